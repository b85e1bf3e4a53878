resource "google_artifact_registry_repository" "images" {
  location      = var.region
  repository_id = "atsep"
  description   = "Audio-Track Separator images (workers, GPU trainer, Flex Template launchers)"
  format        = "DOCKER"
  depends_on    = [google_project_service.apis]
}
