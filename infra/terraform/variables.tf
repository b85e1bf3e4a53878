variable "project" {
  description = "Google Cloud project id"
  type        = string
}

variable "region" {
  description = "Region of the bucket, the Docker repository, Dataflow and Vertex AI"
  type        = string
  default     = "europe-west1"
}

variable "bucket" {
  description = "Bucket name (without gs://) for songs, records, the model registry, templates and temp files"
  type        = string
}

variable "tmp_retention_days" {
  description = "Days before objects under tmp/ and pipeline-root/ are deleted"
  type        = number
  default     = 14
}
