package functions

import (
	"context"
	"crypto/ed25519"

	kms "cloud.google.com/go/kms/apiv1"

	"github.com/conifer-kt/conifer/functions/internal/kmssign"
)

// Provisioning helpers for deployment tooling and the local stack (which
// cannot import the internal packages).

// SealVRFSeed encrypts a new realm's 32-byte VRF seed under the symmetric
// KMS key keyName (the value of CONIFER_VRF_SECRET_CIPHERTEXT).
func SealVRFSeed(ctx context.Context, client *kms.KeyManagementClient, keyName, realm string, seed []byte) ([]byte, error) {
	return kmssign.SealVRFSeed(ctx, client, keyName, realm, seed)
}

// SigningPublicKey returns the Ed25519 public key of the checkpoint
// signing key version (for the realm config's log_key).
func SigningPublicKey(ctx context.Context, client *kms.KeyManagementClient, versionName string) (ed25519.PublicKey, error) {
	return kmssign.PublicKey(ctx, client, versionName)
}
