# Terraform and provider versions. The providers cannot be downloaded on the
# development machines (no network), so no .terraform.lock.hcl is checked
# in: the first `terraform init` on a machine with network access creates
# it; commit it then.
terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.14, < 8.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
