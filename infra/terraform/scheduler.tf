# Cloud Scheduler: triggers the epoch function every minute. The epoch
# function decides whether an epoch is due, holds a lease in Spanner and
# records its cut durably, so overlapping or retried triggers (the scheduler
# is at-least-once) never produce two different epochs with one number.

resource "google_cloud_scheduler_job" "epoch" {
  name             = "${var.name_prefix}epoch"
  region           = var.region
  description      = "Triggers the Conifer epoch function."
  schedule         = var.epoch_schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "${min(local.sizing.epoch.timeout_seconds, 1800)}s"

  retry_config {
    retry_count          = var.epoch_retry_count
    min_backoff_duration = "5s"
    max_backoff_duration = "30s"
    max_doublings        = 2
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.function["epoch"].service_config[0].uri

    # The function's Cloud Run service admits only this account's tokens
    # (functions.tf); the function may check the email again
    # (CONIFER_EPOCH_INVOKER).
    oidc_token {
      service_account_email = google_service_account.epoch_invoker.email
      audience              = google_cloudfunctions2_function.function["epoch"].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.epoch_invoker]
}
