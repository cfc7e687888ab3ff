# Pub/Sub: the epochs topic the epoch function publishes every committed
# epoch's bundle to (the outbox drains into it), one ordered subscription
# per verifier, and a dead-letter topic for messages a verifier cannot take.
#
# Ordering: the publisher sets an ordering key (the realm) on every message;
# subscriptions with enable_message_ordering deliver one key's messages in
# publish order. A message that reaches the dead-letter topic leaves a gap,
# which the verifier fills from the feed function.

resource "google_pubsub_topic" "epochs" {
  name                       = var.epochs_topic_name
  message_retention_duration = "604800s" # 7 days: a new subscription can seek back a week.
  labels                     = var.labels

  depends_on = [google_project_service.api]
}

# Only the epoch function publishes epochs.
resource "google_pubsub_topic_iam_member" "epochs_publisher" {
  topic  = google_pubsub_topic.epochs.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.function["epoch"].member
}

resource "google_pubsub_topic" "dead_letter" {
  name                       = "${var.epochs_topic_name}-dead-letter"
  message_retention_duration = "604800s"
  labels                     = var.labels

  depends_on = [google_project_service.api]
}

# Messages published to a topic without subscriptions are lost: this one
# keeps dead letters for operators to inspect.
resource "google_pubsub_subscription" "dead_letter" {
  name                       = "${var.epochs_topic_name}-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  message_retention_duration = "604800s"
  retain_acked_messages      = true
  ack_deadline_seconds       = 60
  labels                     = var.labels

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "verifier" {
  for_each = var.verifiers

  name                       = "${var.epochs_topic_name}-${each.key}"
  topic                      = google_pubsub_topic.epochs.id
  enable_message_ordering    = true
  ack_deadline_seconds       = var.subscription_ack_deadline_seconds
  message_retention_duration = "604800s"
  retain_acked_messages      = false
  labels                     = var.labels

  # Never expire for inactivity: a verifier that is down for a month still
  # has its subscription (its backlog beyond 7 days comes from the feed).
  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = var.subscription_min_backoff
    maximum_backoff = var.subscription_max_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.subscription_max_delivery_attempts
  }

  dynamic "push_config" {
    for_each = each.value.push_endpoint == null ? [] : [each.value]
    content {
      push_endpoint = push_config.value.push_endpoint
      oidc_token {
        service_account_email = push_config.value.push_service_account
        audience              = push_config.value.push_endpoint
      }
    }
  }
}

# Each verifier may pull and acknowledge its own subscription only.
resource "google_pubsub_subscription_iam_member" "verifier" {
  for_each = var.verifiers

  subscription = google_pubsub_subscription.verifier[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = each.value.subscriber
}

# Dead-lettering: the Pub/Sub service agent must be able to publish to the
# dead-letter topic and to acknowledge the forwarded messages on the source
# subscriptions.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = var.verifiers

  subscription = google_pubsub_subscription.verifier[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
