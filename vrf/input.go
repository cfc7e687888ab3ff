package vrf

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Limits of Input's fields, and the size of an index, in bytes.
const (
	// MaxRealmSize is the longest realm name Input accepts.
	MaxRealmSize = 255
	// MaxUserIDSize is the longest user id Input accepts.
	MaxUserIDSize = 1024
	// IndexSize is the size of a tree index.
	IndexSize = 32
)

// inputTag is the domain-separation tag that starts every VRF input.
const inputTag = "conifer/vrf-input/v1"

// ErrInputTooLong is returned (wrapped) by Input when the realm or the user
// id is over its limit.
var ErrInputTooLong = errors.New("vrf: input field too long")

// Input returns the VRF input (alpha) for a user id in a realm:
//
//	alpha = "conifer/vrf-input/v1" ‖ 0x00
//	      ‖ uint16be(len(realm))  ‖ realm     // at most MaxRealmSize bytes
//	      ‖ uint32be(len(userID)) ‖ userID    // at most MaxUserIDSize bytes
//
// The encoding is injective: distinct (realm, userID) pairs give distinct
// inputs, and no input is a prefix of another. Input does not interpret or
// normalise either string; callers pass the canonical user id.
func Input(realm, userID string) ([]byte, error) {
	if len(realm) > MaxRealmSize {
		return nil, fmt.Errorf("couldn't make VRF input: realm is %d bytes, at most %d allowed: %w", len(realm), MaxRealmSize, ErrInputTooLong)
	}
	if len(userID) > MaxUserIDSize {
		return nil, fmt.Errorf("couldn't make VRF input: user id is %d bytes, at most %d allowed: %w", len(userID), MaxUserIDSize, ErrInputTooLong)
	}
	b := make([]byte, 0, len(inputTag)+1+2+len(realm)+4+len(userID))
	b = append(b, inputTag...)
	b = append(b, 0x00)
	b = binary.BigEndian.AppendUint16(b, uint16(len(realm)))
	b = append(b, realm...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(userID)))
	b = append(b, userID...)
	return b, nil
}

// Index returns the tree index for a VRF output: its first 32 bytes.
func Index(beta [OutputSize]byte) [IndexSize]byte {
	return [IndexSize]byte(beta[:IndexSize])
}
