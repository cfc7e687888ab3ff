package format

import "encoding/binary"

// reader consumes a byte string front to back. Its methods report false
// when the input ends too early; the caller turns that into an error naming
// the field. Slices it returns have their capacity clipped to their length,
// so appending to one never overwrites the bytes after it.
type reader struct {
	b []byte
}

func (r *reader) u8(v *uint8) bool {
	if len(r.b) < 1 {
		return false
	}
	*v = r.b[0]
	r.b = r.b[1:]
	return true
}

func (r *reader) u16(v *uint16) bool {
	if len(r.b) < 2 {
		return false
	}
	*v = binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return true
}

func (r *reader) u32(v *uint32) bool {
	if len(r.b) < 4 {
		return false
	}
	*v = binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return true
}

func (r *reader) u64(v *uint64) bool {
	if len(r.b) < 8 {
		return false
	}
	*v = binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return true
}

// bytes reads the next n bytes.
func (r *reader) bytes(v *[]byte, n int) bool {
	if n < 0 || len(r.b) < n {
		return false
	}
	*v = r.b[:n:n]
	r.b = r.b[n:]
	return true
}

// copyTo fills dst from the next len(dst) bytes.
func (r *reader) copyTo(dst []byte) bool {
	if len(r.b) < len(dst) {
		return false
	}
	copy(dst, r.b)
	r.b = r.b[len(dst):]
	return true
}

// bool reads a uint8 that must be 0 or 1. ok is false on truncation; a
// byte other than 0 or 1 sets bad.
func (r *reader) bool(v *bool) (ok, bad bool) {
	var x uint8
	if !r.u8(&x) {
		return false, false
	}
	*v = x == 1
	return true, x > 1
}

func (r *reader) empty() bool { return len(r.b) == 0 }

// clone copies b once so that parsed values never alias the caller's buffer.
func clone(b []byte) []byte {
	return append(make([]byte, 0, len(b)), b...)
}

func isZero32(b [32]byte) bool { return b == [32]byte{} }
