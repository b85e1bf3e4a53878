output "bucket" {
  value = google_storage_bucket.data.url
}

output "image_repository" {
  value = "${var.region}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.images.repository_id}"
}

output "service_accounts" {
  value = { for key, account in google_service_account.atsep : key => account.email }
}
