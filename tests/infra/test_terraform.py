"""Terraform parses (HCL2), declares what it uses, and grants no more than each service needs."""
from __future__ import annotations

import re

import hcl2

from infra import cloud
from tests.conftest import REPO

TERRAFORM = REPO / "infra" / "terraform"
ALLOWED_PROJECT_ROLES = {"roles/dataflow.worker", "roles/dataflow.developer", "roles/aiplatform.user",
                         "roles/logging.logWriter"}


def _files() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(TERRAFORM.glob("*.tf"))}


def test_every_file_parses_and_every_variable_is_declared():
    declared = set()
    for name, text in _files().items():
        parsed = hcl2.loads(text)  # raises on a syntax error
        for block in parsed.get("variable", []):
            declared |= {key.strip("\"") for key in block}  # python-hcl2 8 keeps the quotes
    used = {match for text in _files().values() for match in re.findall(r"\bvar\.([a-z_]+)", text)}
    assert used and used <= declared


def test_service_accounts_are_the_ones_the_commands_use():
    iam = _files()["iam.tf"]
    accounts = set(re.findall(r"^\s+(\w+)\s+= \"", iam.split("project_roles")[0], flags=re.M))
    sample = cloud.Cloud("p", "r", "b")
    for role in ("dataflow", "trainer", "pipelines"):
        assert role in accounts and sample.account(role).startswith(f"atsep-{role}@")
    assert 'account_id   = "atsep-${each.key}"' in iam


def test_least_privilege():
    text = "\n".join(_files().values())
    roles = set(re.findall(r'"(roles/[A-Za-z.]+)"', text))
    assert not roles & {"roles/owner", "roles/editor", "roles/viewer", "roles/storage.admin",
                        "roles/iam.serviceAccountAdmin"}
    project_roles = set(re.findall(r'"(roles/[A-Za-z.]+)"', _files()["iam.tf"].split("project_bindings")[0]))
    assert project_roles <= ALLOWED_PROJECT_ROLES
    # storage and images are granted on the bucket and the repository, never project-wide
    assert "google_storage_bucket_iam_member" in text and "google_artifact_registry_repository_iam_member" in text
    assert not re.search(r'google_project_iam_member[^}]*roles/(storage|artifactregistry)', text, flags=re.S)


def test_the_apis_the_jobs_need_are_enabled():
    services = set(re.findall(r'"([a-z]+\.googleapis\.com)"', _files()["apis.tf"]))
    assert {"dataflow.googleapis.com", "aiplatform.googleapis.com", "artifactregistry.googleapis.com",
            "storage.googleapis.com", "compute.googleapis.com"} <= services
