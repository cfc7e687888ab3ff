# Cloud Spanner: the instance and Conifer's database. The DDL is
# ../schema.sql (tables and indexes, also what the tests apply to the
# emulator) followed by ../roles.sql (fine-grained access control, which the
# emulator does not support), split by modules/ddl exactly like the Go
# function infra.SplitDDL.
#
# The provider applies a changed `ddl` only if the old list is a prefix of
# the new one; any other change would recreate the database, which
# deletion_protection refuses. So schema changes are appended: add new
# statements in a new file and append its module output to the END of the
# concat below (never edit schema.sql or roles.sql statements once applied).

module "schema_ddl" {
  source = "./modules/ddl"
  sql    = file("${path.module}/../schema.sql")
}

module "roles_ddl" {
  source = "./modules/ddl"
  sql    = file("${path.module}/../roles.sql")
}

resource "google_spanner_instance" "conifer" {
  name             = var.spanner_instance_name
  config           = var.spanner_instance_config
  display_name     = "Conifer keyserver"
  processing_units = var.spanner_processing_units
  labels           = var.labels

  depends_on = [google_project_service.api]
}

resource "google_spanner_database" "conifer" {
  instance                 = google_spanner_instance.conifer.name
  name                     = var.spanner_database_name
  database_dialect         = "GOOGLE_STANDARD_SQL"
  version_retention_period = var.spanner_version_retention_period
  ddl                      = concat(module.schema_ddl.statements, module.roles_ddl.statements)
  deletion_protection      = var.deletion_protection
  enable_drop_protection   = var.deletion_protection
}

locals {
  spanner_database_path = "projects/${var.project_id}/instances/${google_spanner_instance.conifer.name}/databases/${google_spanner_database.conifer.name}"

  # Fine-grained access control: the database role (roles.sql) each writing
  # function assumes. Functions not listed here read through
  # roles/spanner.databaseReader.
  database_roles = {
    update = "conifer_update"
    epoch  = "conifer_epoch"
    ratify = "conifer_ratify"
    feed   = "conifer_feed"
  }
  database_readers = ["lookup", "history", "checkpoint"]
}

# Read-only functions: database-level read access.
resource "google_spanner_database_iam_member" "reader" {
  for_each = toset(local.database_readers)

  instance = google_spanner_instance.conifer.name
  database = google_spanner_database.conifer.name
  role     = "roles/spanner.databaseReader"
  member   = google_service_account.function[each.key].member
}

# Writing functions: fine-grained access control users, who get no access
# at all except through a database role...
resource "google_spanner_database_iam_member" "fine_grained_user" {
  for_each = local.database_roles

  instance = google_spanner_instance.conifer.name
  database = google_spanner_database.conifer.name
  role     = "roles/spanner.fineGrainedAccessUser"
  member   = google_service_account.function[each.key].member
}

# ...and each may assume exactly its own role.
resource "google_spanner_database_iam_member" "database_role" {
  for_each = local.database_roles

  instance = google_spanner_instance.conifer.name
  database = google_spanner_database.conifer.name
  role     = "roles/spanner.databaseRoleUser"
  member   = google_service_account.function[each.key].member

  condition {
    title       = "only-${each.value}"
    description = "The ${each.key} function may assume the ${each.value} database role and no other."
    expression  = "resource.type == \"spanner.googleapis.com/DatabaseRole\" && resource.name.endsWith(\"/${each.value}\")"
  }
}
