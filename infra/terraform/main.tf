# Conifer: an end-to-end encryption keyserver with key transparency, as
# serverless functions on Google Cloud. This configuration creates one
# realm's deployment; README.md explains the apply steps and what each file
# holds.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  kms_location = coalesce(var.kms_location, var.region)

  # The Google-managed Pub/Sub service agent, which moves undeliverable
  # messages to the dead-letter topic.
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  apis = [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudscheduler.googleapis.com",
    "iam.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "spanner.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "api" {
  for_each = var.enable_apis ? toset(local.apis) : toset([])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# Bucket holding the zipped source the functions are built from.
resource "google_storage_bucket" "source" {
  name                        = "${var.project_id}-${var.name_prefix}source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels

  # Old source zips are useless once built; keep a month for rollbacks.
  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.api]
}

# Bucket holding the realm configuration the functions read at start.
resource "google_storage_bucket" "config" {
  name                        = "${var.project_id}-${var.name_prefix}config"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels

  versioning {
    enabled = true
  }

  depends_on = [google_project_service.api]
}

# The realm config, named by its hash: a changed file is a new object, and
# the functions' environment (which names it) changes with it, so they
# restart on the new config.
resource "google_storage_bucket_object" "realm_config" {
  name         = "realm/${filesha256(var.realm_config_path)}.json"
  bucket       = google_storage_bucket.config.name
  source       = var.realm_config_path
  content_type = "application/json"
}
