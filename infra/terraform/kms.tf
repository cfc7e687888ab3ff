# Cloud KMS: the realm's checkpoint signing key (Ed25519, used only by the
# epoch function) and the key that envelope-encrypts the VRF secret (Cloud
# KMS has no VRF operation). Both are prevent_destroy: losing the signing key
# ends the realm, losing the VRF key makes every tree key unrecomputable.

resource "google_kms_key_ring" "conifer" {
  name     = var.kms_key_ring_name
  location = local.kms_location

  depends_on = [google_project_service.api]
}

# EC_SIGN_ED25519 is pure Ed25519: AsymmetricSign takes the message itself
# (the checkpoint note body), not a digest. The epoch function signs with
# version 1 (data.google_kms_crypto_key_version.signing); clients pin its
# public key through the realm config.
resource "google_kms_crypto_key" "signing" {
  name     = "checkpoint-signing"
  key_ring = google_kms_key_ring.conifer.id
  purpose  = "ASYMMETRIC_SIGN"
  labels   = var.labels

  version_template {
    algorithm        = "EC_SIGN_ED25519"
    protection_level = var.signing_key_protection_level
  }

  lifecycle {
    prevent_destroy = true
  }
}

data "google_kms_crypto_key_version" "signing" {
  crypto_key = google_kms_crypto_key.signing.id
  version    = 1
}

resource "google_kms_crypto_key" "vrf" {
  name            = "vrf-secret-envelope"
  key_ring        = google_kms_key_ring.conifer.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = var.vrf_key_rotation_period
  labels          = var.labels

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = var.vrf_key_protection_level
  }

  lifecycle {
    prevent_destroy = true
  }
}

# Only the epoch function signs checkpoints.
resource "google_kms_crypto_key_iam_member" "signing_epoch" {
  crypto_key_id = google_kms_crypto_key.signing.id
  role          = "roles/cloudkms.signerVerifier"
  member        = google_service_account.function["epoch"].member
}

# The functions that compute VRF outputs and proofs decrypt the VRF secret:
# update (tree key of an update), lookup and history (proof for a user id).
resource "google_kms_crypto_key_iam_member" "vrf_decrypt" {
  for_each = toset(["update", "lookup", "history"])

  crypto_key_id = google_kms_crypto_key.vrf.id
  role          = "roles/cloudkms.cryptoKeyDecrypter"
  member        = google_service_account.function[each.key].member
}
