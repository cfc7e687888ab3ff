# Service accounts, one per function plus the Cloud Scheduler invoker and the
# build account, each with only what its job needs. Access to the other
# services' resources is granted beside those resources: Spanner roles in
# spanner.tf, KMS keys in kms.tf, Pub/Sub in pubsub.tf, invokers in
# functions.tf. Summary:
#
#   function    Spanner                                 KMS                 Pub/Sub
#   update      role conifer_update (append log, users)  decrypt VRF secret  -
#   lookup      databaseReader                          decrypt VRF secret  -
#   history     databaseReader                          decrypt VRF secret  -
#   checkpoint  databaseReader                          -                   -
#   epoch       role conifer_epoch (tree, epochs)        sign checkpoints    publish epochs
#   feed        role conifer_feed (read-only, no users)  -                   -
#   ratify      role conifer_ratify (cosignatures only)  -                   -
#
# Every function can read the realm config object's bucket; nothing else is
# granted at project level.

resource "google_service_account" "function" {
  for_each = local.functions

  account_id   = "${var.name_prefix}${each.key}"
  display_name = "Conifer ${each.value.entry_point} function"
  description  = "Runtime identity of the Conifer ${each.value.entry_point} function."

  depends_on = [google_project_service.api]
}

# The identity Cloud Scheduler presents (OIDC) when it triggers an epoch.
resource "google_service_account" "epoch_invoker" {
  account_id   = "${var.name_prefix}epoch-invoker"
  display_name = "Conifer epoch trigger"
  description  = "Cloud Scheduler calls the Conifer epoch function as this account; nothing else may call it."

  depends_on = [google_project_service.api]
}

# The identity Cloud Build uses to build the functions' containers.
resource "google_service_account" "build" {
  account_id   = "${var.name_prefix}build"
  display_name = "Conifer function builds"
  description  = "Builds the Conifer functions from source (Cloud Functions 2nd gen build service account)."

  depends_on = [google_project_service.api]
}

resource "google_project_iam_member" "build" {
  for_each = toset([
    "roles/cloudbuild.builds.builder", # run builds, push images to Artifact Registry, write logs
  ])

  project = var.project_id
  role    = each.value
  member  = google_service_account.build.member
}

resource "google_storage_bucket_iam_member" "build_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

# Every function reads the realm config.
resource "google_storage_bucket_iam_member" "config_reader" {
  for_each = local.functions

  bucket = google_storage_bucket.config.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.function[each.key].member
}
