# Outputs: what operators, cloudbuild.yaml substitutions and the realm
# config need from the deployment.

output "function_urls" {
  description = "HTTPS endpoint of each function, keyed by short name (update, lookup, ...)."
  value       = { for name, fn in google_cloudfunctions2_function.function : name => fn.service_config[0].uri }
}

output "function_service_accounts" {
  description = "Runtime service account email of each function (the cloudbuild.yaml _SA_* substitutions)."
  value       = { for name, sa in google_service_account.function : name => sa.email }
}

output "build_service_account" {
  description = "Service account that builds the functions (the cloudbuild.yaml _BUILD_SA substitution)."
  value       = google_service_account.build.email
}

output "epoch_invoker_service_account" {
  description = "Service account Cloud Scheduler uses to call the epoch function."
  value       = google_service_account.epoch_invoker.email
}

output "spanner_database" {
  description = "Full resource name of the Spanner database (projects/P/instances/I/databases/D)."
  value       = local.spanner_database_path
}

output "spanner_database_roles" {
  description = "Fine-grained access control database role assumed by each writing function."
  value       = local.database_roles
}

output "signing_key_version" {
  description = "KMS key version that signs checkpoints; put its public key (gcloud kms keys versions get-public-key) into the realm config."
  value       = data.google_kms_crypto_key_version.signing.name
}

output "vrf_key" {
  description = "KMS key that envelope-encrypts the VRF secret (encrypt the secret with it to set vrf_secret_ciphertext)."
  value       = google_kms_crypto_key.vrf.id
}

output "epochs_topic" {
  description = "Pub/Sub topic of epoch bundles."
  value       = google_pubsub_topic.epochs.id
}

output "dead_letter_topic" {
  description = "Pub/Sub topic receiving epoch messages that a verifier subscription failed to deliver."
  value       = google_pubsub_topic.dead_letter.id
}

output "verifier_subscriptions" {
  description = "Subscription of each verifier, keyed by verifier name."
  value       = { for name, sub in google_pubsub_subscription.verifier : name => sub.id }
}

output "realm_config_url" {
  description = "gs:// URL of the realm config the functions read."
  value       = local.common_env.CONIFER_REALM_CONFIG
}

output "source_bucket" {
  description = "Bucket holding the zipped function source."
  value       = google_storage_bucket.source.name
}
