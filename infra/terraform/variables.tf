# Input variables of the Conifer deployment. Every variable says what it
# sets, its default, and which combinations are unsafe.

variable "project_id" {
  description = "Google Cloud project that holds the whole deployment."
  type        = string
}

variable "region" {
  description = "Region of the functions, the Cloud Scheduler job, the buckets and (by default) the KMS key ring. Pick one close to the Spanner instance configuration."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of every function, service account and Cloud Scheduler job name (functions are named <prefix><function>, e.g. conifer-update). Must equal the _FUNCTION_PREFIX substitution of cloudbuild.yaml so that Cloud Build redeploys the same functions."
  type        = string
  default     = "conifer-"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,11}$", var.name_prefix))
    error_message = "name_prefix must be 1-12 characters of lowercase letters, digits and hyphens, starting with a letter (service account ids are at most 30 characters)."
  }
}

variable "enable_apis" {
  description = "Whether Terraform enables the Google Cloud APIs the deployment uses (and leaves them enabled on destroy). Set false when the project's APIs are managed elsewhere."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels put on every resource that takes labels."
  type        = map(string)
  default     = {}
}

# --- Spanner -----------------------------------------------------------------

variable "spanner_instance_name" {
  description = "Name of the Cloud Spanner instance."
  type        = string
  default     = "conifer"
}

variable "spanner_instance_config" {
  description = "Spanner instance configuration, e.g. regional-us-central1 or a multi-region such as nam6 (higher availability, higher write latency)."
  type        = string
  default     = "regional-us-central1"
}

variable "spanner_processing_units" {
  description = "Compute capacity of the Spanner instance in processing units (100 = 1/10 node; multiples of 100 below 1000, of 1000 above)."
  type        = number
  default     = 100
}

variable "spanner_database_name" {
  description = "Name of the Conifer database inside the instance."
  type        = string
  default     = "conifer"
}

variable "spanner_version_retention_period" {
  description = "How long Spanner keeps old row versions (point-in-time recovery and stale reads), between 1h and 7d."
  type        = string
  default     = "3d"
}

variable "deletion_protection" {
  description = "Protects the Spanner instance's database from deletion, both in Terraform and server-side (drop protection). Turning it off allows `terraform destroy` to delete the log, which verifiers and users can never get back: only for test deployments."
  type        = bool
  default     = true
}

# --- KMS ---------------------------------------------------------------------

variable "kms_location" {
  description = "Location of the KMS key ring; null means the region. Keys cannot move: changing this creates new keys (a new realm key)."
  type        = string
  default     = null
}

variable "kms_key_ring_name" {
  description = "Name of the KMS key ring. Key rings cannot be deleted, so a destroyed deployment cannot reuse the name."
  type        = string
  default     = "conifer"
}

variable "signing_key_protection_level" {
  description = "Protection level of the Ed25519 checkpoint signing key (EC_SIGN_ED25519): HSM keeps the realm key in Cloud HSM; SOFTWARE is cheaper and meant for test deployments."
  type        = string
  default     = "HSM"

  validation {
    condition     = contains(["HSM", "SOFTWARE"], var.signing_key_protection_level)
    error_message = "signing_key_protection_level must be HSM or SOFTWARE."
  }
}

variable "vrf_key_protection_level" {
  description = "Protection level of the symmetric key that envelope-encrypts the VRF secret: HSM or SOFTWARE."
  type        = string
  default     = "HSM"

  validation {
    condition     = contains(["HSM", "SOFTWARE"], var.vrf_key_protection_level)
    error_message = "vrf_key_protection_level must be HSM or SOFTWARE."
  }
}

variable "vrf_key_rotation_period" {
  description = "Rotation period of the VRF envelope key (e.g. 7776000s), or null for none. Rotation only changes the key that wraps the secret: old key versions stay enabled for decryption, and the VRF secret itself is never rotated (old epochs depend on it)."
  type        = string
  default     = null
}

variable "vrf_secret_ciphertext" {
  description = "Base64 of the VRF secret key encrypted with the vrf key of this deployment (`gcloud kms encrypt`, see README.md). Empty until the key exists: README.md step 2 creates the keys first, step 3 sets this."
  type        = string
  default     = ""

  validation {
    condition     = var.vrf_secret_ciphertext == "" || can(base64decode(var.vrf_secret_ciphertext))
    error_message = "vrf_secret_ciphertext must be standard base64."
  }
}

# --- Realm -------------------------------------------------------------------

variable "realm_config_path" {
  description = "Path of the realm configuration file (public part: realm name, VRF public key, keyserver key, verifier keys and quorum, epoch intervals, registration policy). Uploaded to the config bucket; the functions read it from there."
  type        = string
}

# --- Pub/Sub -----------------------------------------------------------------

variable "epochs_topic_name" {
  description = "Name of the Pub/Sub topic the epoch function publishes epoch bundles to."
  type        = string
  default     = "epochs"
}

variable "verifiers" {
  description = <<-EOT
    Verifiers that consume the epochs topic, by short name (lowercase letters, digits, hyphens). Each gets its own ordered subscription epochs-<name>:
      subscriber           - IAM member allowed to pull/ack it (e.g. serviceAccount:v@their-project.iam.gserviceaccount.com).
      push_endpoint        - optional HTTPS endpoint: makes it a push subscription.
      push_service_account - service account whose OIDC token authenticates pushes (required with push_endpoint).
  EOT
  type = map(object({
    subscriber           = string
    push_endpoint        = optional(string)
    push_service_account = optional(string)
  }))
  default = {}

  validation {
    condition     = alltrue([for name in keys(var.verifiers) : can(regex("^[a-z][a-z0-9-]{0,40}$", name))])
    error_message = "verifier names must be lowercase letters, digits and hyphens, starting with a letter, at most 41 characters."
  }
  validation {
    condition     = alltrue([for v in values(var.verifiers) : v.push_endpoint == null || v.push_service_account != null])
    error_message = "a verifier with push_endpoint needs push_service_account."
  }
}

variable "subscription_ack_deadline_seconds" {
  description = "Ack deadline of the verifier subscriptions: how long a verifier has to replay and check an epoch before redelivery (10-600)."
  type        = number
  default     = 300
}

variable "subscription_max_delivery_attempts" {
  description = "Deliveries of one message to a verifier before it goes to the dead-letter topic (5-100). The verifier backfills the gap from the feed function."
  type        = number
  default     = 20
}

variable "subscription_min_backoff" {
  description = "Minimum redelivery delay after a nack or missed deadline."
  type        = string
  default     = "10s"
}

variable "subscription_max_backoff" {
  description = "Maximum redelivery delay after repeated nacks."
  type        = string
  default     = "600s"
}

# --- Functions ---------------------------------------------------------------

variable "function_sizing" {
  description = <<-EOT
    Per-function overrides of the sizing defaults in functions.tf (local.default_sizing), keyed by function (update, lookup, history, checkpoint, epoch, feed, ratify). Any attribute left null keeps its default:
      memory (e.g. 512Mi), cpu (e.g. "1"), timeout_seconds (HTTP: at most 3600),
      min_instances (kept warm; lookup defaults to 1), max_instances, concurrency (requests per instance; needs cpu >= 1 above 1).
    Giving epoch more than one instance is safe (the lease fences it) but buys nothing.
  EOT
  type = map(object({
    memory          = optional(string)
    cpu             = optional(string)
    timeout_seconds = optional(number)
    min_instances   = optional(number)
    max_instances   = optional(number)
    concurrency     = optional(number)
  }))
  default = {}

  validation {
    condition     = alltrue([for name in keys(var.function_sizing) : contains(["update", "lookup", "history", "checkpoint", "epoch", "feed", "ratify"], name)])
    error_message = "function_sizing keys must be among update, lookup, history, checkpoint, epoch, feed, ratify."
  }
}

variable "invokers" {
  description = "IAM members allowed to call each public function (roles/run.invoker), keyed by function. The protocol authenticates every request itself (signatures, OIDC ID tokens, verifier keys), so the defaults are public (allUsers); an organisation policy may require narrowing them. The epoch function is not listed: only the Cloud Scheduler job's service account may call it."
  type        = map(list(string))
  default = {
    update     = ["allUsers"]
    lookup     = ["allUsers"]
    history    = ["allUsers"]
    checkpoint = ["allUsers"]
    feed       = ["allUsers"]
    ratify     = ["allUsers"]
  }

  validation {
    condition     = alltrue([for name in keys(var.invokers) : contains(["update", "lookup", "history", "checkpoint", "feed", "ratify"], name)])
    error_message = "invokers keys must be among update, lookup, history, checkpoint, feed, ratify (never epoch)."
  }
}

# --- Scheduler ---------------------------------------------------------------

variable "epoch_schedule" {
  description = "Cron schedule of the epoch trigger. Every minute by default; the epoch function itself decides whether an epoch is due (MinEpochInterval, MaxEpochInterval of the realm config), so a finer schedule only lowers latency."
  type        = string
  default     = "* * * * *"
}

variable "epoch_retry_count" {
  description = "Retries of a failed epoch trigger before Cloud Scheduler waits for the next firing (0-5). Retries are safe: the lease and the durable attempt record make the epoch function idempotent."
  type        = number
  default     = 2
}
