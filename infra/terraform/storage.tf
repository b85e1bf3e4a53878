resource "google_storage_bucket" "data" {
  name                        = var.bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  soft_delete_policy {
    retention_duration_seconds = 0 # Dataflow's temp files churn; Beam warns about soft delete on temp buckets
  }

  lifecycle_rule {
    condition {
      age            = var.tmp_retention_days
      matches_prefix = ["tmp/", "pipeline-root/"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}
