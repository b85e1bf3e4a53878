locals {
  services = [
    "aiplatform.googleapis.com",       # Vertex AI training and Pipelines
    "artifactregistry.googleapis.com", # the image
    "compute.googleapis.com",          # Dataflow and Vertex AI workers
    "dataflow.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each           = toset(local.services)
  service            = each.value
  disable_on_destroy = false
}
