# Splits a DDL file (infra/schema.sql, infra/roles.sql) into the statement
# list that google_spanner_database.ddl takes, exactly as the Go function
# infra.SplitDDL does for valid files (a Go test evaluates this module with
# `terraform console` and compares): every line loses its "--" comment and
# surrounding whitespace, empty lines are dropped, the rest is joined with
# newlines and cut at ";", and each non-empty piece, trimmed, is a statement.
# The files' strict grammar (no quotes, so no ";" or "--" inside literals)
# is enforced by infra.SplitDDL in the tests, not here.

variable "sql" {
  description = "Contents of a DDL file following infra.SplitDDL's grammar."
  type        = string
}

locals {
  code_lines = [
    for line in split("\n", var.sql) : trimspace(replace(line, "/--.*$/", ""))
  ]
  pieces = split(";", join("\n", [for line in local.code_lines : line if line != ""]))
}

output "statements" {
  description = "The DDL statements in file order, without comments or terminating semicolons."
  value       = [for piece in local.pieces : trimspace(piece) if trimspace(piece) != ""]
}
