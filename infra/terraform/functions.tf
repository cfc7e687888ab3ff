# Cloud Functions (2nd gen): one function per entry point registered by the
# functions package (functions.HTTP("Update", ...) etc.). All are HTTP
# functions; the epoch function is called only by Cloud Scheduler.
#
# Terraform creates the functions from a zip of the repository; afterwards
# cloudbuild.yaml redeploys new code (`gcloud functions deploy`), so the
# source is ignored after creation (see the lifecycle block). The function
# names and entry points here must match cloudbuild.yaml's deploy steps: a Go
# test (infra/cloudbuild_test.go) compares them.

locals {
  # Entry point (the name registered in the functions package) of each
  # function, keyed by the short name used everywhere else.
  functions = {
    update = {
      entry_point = "Update"
    }
    lookup = {
      entry_point = "Lookup"
    }
    history = {
      entry_point = "History"
    }
    checkpoint = {
      entry_point = "Checkpoint"
    }
    epoch = {
      entry_point = "Epoch"
    }
    feed = {
      entry_point = "Feed"
    }
    ratify = {
      entry_point = "Ratify"
    }
  }

  # Sizing defaults, overridable per attribute through var.function_sizing.
  default_sizing = {
    update     = { memory = "512Mi", cpu = "1", timeout_seconds = 60, min_instances = 0, max_instances = 100, concurrency = 20 }
    lookup     = { memory = "512Mi", cpu = "1", timeout_seconds = 30, min_instances = 1, max_instances = 100, concurrency = 40 }
    history    = { memory = "512Mi", cpu = "1", timeout_seconds = 60, min_instances = 0, max_instances = 50, concurrency = 20 }
    checkpoint = { memory = "256Mi", cpu = "1", timeout_seconds = 15, min_instances = 0, max_instances = 20, concurrency = 80 }
    # One epoch at a time, with room for a large one (HTTP functions may run
    # up to 3600 s; the scheduler's attempt deadline caps at 1800 s).
    epoch  = { memory = "2Gi", cpu = "2", timeout_seconds = 1800, min_instances = 0, max_instances = 1, concurrency = 1 }
    feed   = { memory = "1Gi", cpu = "1", timeout_seconds = 300, min_instances = 0, max_instances = 20, concurrency = 10 }
    ratify = { memory = "256Mi", cpu = "1", timeout_seconds = 30, min_instances = 0, max_instances = 10, concurrency = 40 }
  }

  sizing = {
    for name, defaults in local.default_sizing : name => merge(defaults, {
      for attr, value in try(var.function_sizing[name], {}) : attr => value if value != null
    })
  }

  # Environment of every function: where the realm config is and which
  # project it runs in. The CONIFER_* names are the contract with the
  # functions package (README.md lists them).
  common_env = {
    CONIFER_PROJECT      = var.project_id
    CONIFER_REALM_CONFIG = "gs://${google_storage_bucket.config.name}/${google_storage_bucket_object.realm_config.name}"
  }

  # Each function gets only the resources it uses.
  # CONIFER_SPANNER_DATABASE_ROLE is set only for the functions that
  # assume a fine-grained role; the others read as plain database readers.
  spanner_env = {
    for name in keys(local.functions) : name => {
      for k, v in {
        CONIFER_SPANNER_DATABASE      = local.spanner_database_path
        CONIFER_SPANNER_DATABASE_ROLE = lookup(local.database_roles, name, "")
      } : k => v if v != ""
    }
  }
  vrf_env = {
    CONIFER_KMS_VRF_KEY           = google_kms_crypto_key.vrf.id
    CONIFER_VRF_SECRET_CIPHERTEXT = var.vrf_secret_ciphertext
  }
  extra_env = {
    update     = local.vrf_env
    lookup     = local.vrf_env
    history    = local.vrf_env
    checkpoint = {}
    epoch = {
      CONIFER_KMS_SIGNING_KEY = data.google_kms_crypto_key_version.signing.name
      CONIFER_PUBSUB_TOPIC    = google_pubsub_topic.epochs.id
      CONIFER_EPOCH_INVOKER   = google_service_account.epoch_invoker.email
    }
    feed   = {}
    ratify = {}
  }
}

# The repository, zipped. Go functions are built by Cloud Build from this
# source (go.mod at its root).
data "archive_file" "source" {
  type        = "zip"
  source_dir  = "${path.module}/../.."
  output_path = "${path.module}/.build/conifer-source.zip"
  excludes = [
    ".git", ".git/**",
    ".conifer", ".conifer/**",
    "bin", "bin/**",
    "infra/terraform/.terraform", "infra/terraform/.terraform/**",
    "infra/terraform/.build", "infra/terraform/.build/**",
    "infra/terraform/terraform.tfstate", "infra/terraform/terraform.tfstate.backup",
  ]
}

resource "google_storage_bucket_object" "source" {
  name   = "source/conifer-${data.archive_file.source.output_sha256}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}

resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions

  name        = "${var.name_prefix}${each.key}"
  location    = var.region
  description = "Conifer ${each.value.entry_point} function."
  labels      = var.labels

  build_config {
    runtime         = "go126"
    entry_point     = each.value.entry_point
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = local.sizing[each.key].memory
    available_cpu                    = local.sizing[each.key].cpu
    timeout_seconds                  = local.sizing[each.key].timeout_seconds
    min_instance_count               = local.sizing[each.key].min_instances
    max_instance_count               = local.sizing[each.key].max_instances
    max_instance_request_concurrency = local.sizing[each.key].concurrency
    service_account_email            = google_service_account.function[each.key].email
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    # Empty values (an unset vrf_secret_ciphertext) are left out rather
    # than set to "".
    environment_variables = {
      for k, v in merge(local.common_env, local.spanner_env[each.key], local.extra_env[each.key]) : k => v if v != ""
    }
  }

  lifecycle {
    # Cloud Build (cloudbuild.yaml) owns code deploys after creation.
    ignore_changes = [build_config[0].source]
  }

  depends_on = [
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_source,
  ]
}

# Who may call each function. The Cloud Run service behind a 2nd gen
# function has the function's name.
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = merge([
    for name, members in var.invokers : {
      for member in members : "${name}/${member}" => { function = name, member = member }
    }
  ]...)

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function[each.value.function].name
  role     = "roles/run.invoker"
  member   = each.value.member
}

resource "google_cloud_run_v2_service_iam_member" "epoch_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function["epoch"].name
  role     = "roles/run.invoker"
  member   = google_service_account.epoch_invoker.member
}
