# Audio-Track Separator on Google Cloud: APIs, one bucket, one Docker repository and three least-privilege
# service accounts (Dataflow workers, Vertex AI training, Vertex AI Pipelines).
#   terraform -chdir=infra/terraform init
#   terraform -chdir=infra/terraform apply -var project=PROJECT -var region=REGION -var bucket=BUCKET
terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}

data "google_project" "this" {}
