# Least privilege: each account gets the one project role its service requires, and storage and image
# access only on this bucket and this repository. No primitive roles (owner, editor, viewer).
locals {
  accounts = {
    dataflow  = "Dataflow workers and Flex Template launchers"
    trainer   = "Vertex AI custom training jobs"
    pipelines = "Vertex AI Pipelines runs (retrain schedule)"
  }
  project_roles = {
    dataflow  = ["roles/dataflow.worker", "roles/logging.logWriter"]
    trainer   = ["roles/logging.logWriter"]
    pipelines = ["roles/aiplatform.user", "roles/dataflow.developer", "roles/logging.logWriter"]
  }
  project_bindings = flatten([
    for account, roles in local.project_roles : [for role in roles : { account = account, role = role }]
  ])
}

resource "google_service_account" "atsep" {
  for_each     = local.accounts
  account_id   = "atsep-${each.key}"
  display_name = "atsep ${each.key}: ${each.value}"
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_member" "roles" {
  for_each = { for binding in local.project_bindings : "${binding.account}:${binding.role}" => binding }
  project  = var.project
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.atsep[each.value.account].email}"
}

# Songs, records, registry, templates and temp files: read and write objects in this bucket only.
resource "google_storage_bucket_iam_member" "objects" {
  for_each = local.accounts
  bucket   = google_storage_bucket.data.name
  role     = "roles/storage.objectUser"
  member   = "serviceAccount:${google_service_account.atsep[each.key].email}"
}

# Dataflow's staging checks the bucket's metadata (location, soft delete) before a launch.
resource "google_storage_bucket_iam_member" "dataflow_bucket_reader" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.legacyBucketReader"
  member = "serviceAccount:${google_service_account.atsep["dataflow"].email}"
}

resource "google_artifact_registry_repository_iam_member" "pull" {
  for_each   = local.accounts
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.repository_id
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.atsep[each.key].email}"
}

# The pipeline launches Dataflow jobs as the worker account and custom jobs as the trainer account.
resource "google_service_account_iam_member" "pipelines_act_as" {
  for_each           = toset(["dataflow", "trainer"])
  service_account_id = google_service_account.atsep[each.key].name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.atsep["pipelines"].email}"
}

# Vertex AI Pipelines' service agent runs the steps as the pipelines account.
resource "google_service_account_iam_member" "vertex_agent_act_as_pipelines" {
  service_account_id = google_service_account.atsep["pipelines"].name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-aiplatform.iam.gserviceaccount.com"
}
