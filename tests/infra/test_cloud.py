"""The cloud commands behind infra/cloud.mk: exact, complete, and built only from real options."""
from __future__ import annotations

import subprocess

import pytest
import yaml

from infra import cloud
from infra.flex.launcher import job_actions, job_parser, parameter_name
from tests.conftest import REPO

CLOUD = cloud.Cloud("atsep-project", "europe-west1", "atsep-bucket", "v7")


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
def test_vertex_spec_renders_completely_and_runs_the_trainer(gpu):
    from trainer.task import parse_args

    spec = yaml.safe_load(cloud.render_vertex_spec(CLOUD, gpu, {"VERSION": "v1"}))
    assert "${" not in yaml.safe_dump(spec)
    pool = spec["workerPoolSpecs"][0]
    container = pool["containerSpec"]
    assert container["imageUri"] == CLOUD.image("atsep-gpu" if gpu else "atsep")
    assert container["command"] == ["python", "-m", "trainer.task"]
    args = parse_args(container["args"])  # every flag is one the trainer really has
    assert args.data == "gs://atsep-bucket/records" and args.strategy == ("mirrored" if gpu else "default")
    assert args.precision == ("mixed_float16" if gpu else "float32")  # float16 only where tensor cores are
    assert args.model_dir is None  # Vertex AI's AIP_MODEL_DIR (from baseOutputDirectory) decides
    assert spec["baseOutputDirectory"]["outputUriPrefix"] == "gs://atsep-bucket/training/v1"
    assert spec["serviceAccount"] == CLOUD.account("trainer")
    assert ("acceleratorType" in pool["machineSpec"]) is gpu


def test_make_vertex_train_gpu_renders_the_gpu_spec_on_the_gpu_image(tmp_path, monkeypatch):
    makefile = tmp_path / "Makefile"
    makefile.write_text(f"BIN := {REPO}/.venv/bin\ninclude {REPO}/infra/cloud.mk\n")
    recipe = subprocess.run(["make", "-n", "-f", str(makefile), "-C", str(REPO), "vertex-train", "GPU=1",
                             "PROJECT=atsep-project", "BUCKET=atsep-bucket", "DRY_RUN=1"],
                            capture_output=True, text=True, timeout=60)
    line = next(line for line in recipe.stdout.splitlines() if "infra.cloud vertex-train" in line)
    assert " --gpu" in line and " --dry_run" in line
    monkeypatch.chdir(tmp_path)  # the rendered spec goes to ./build
    assert cloud.main(["vertex-train", "--gpu", "--dry_run", "--project", CLOUD.project, "--region", CLOUD.region,
                       "--bucket", CLOUD.bucket, "--tag", CLOUD.tag, "VERSION=v2"]) == 0
    spec = yaml.safe_load((tmp_path / "build" / "vertex-train-gpu.yaml").read_text())
    pool = spec["workerPoolSpecs"][0]
    assert pool["containerSpec"]["imageUri"] == CLOUD.image("atsep-gpu") != CLOUD.image()
    assert pool["machineSpec"]["acceleratorType"] == "NVIDIA_L4" and pool["machineSpec"]["acceleratorCount"] >= 1


@pytest.mark.parametrize("job", ["preprocess", "separate"])
def test_dataflow_commands_pass_only_template_parameters(job):
    extra = {"output": "gs://atsep-bucket/x", "dataflow.worker-machine-type": "n1-highmem-4"}
    command = (cloud.preprocess_command(CLOUD, extra) if job == "preprocess"
               else cloud.separate_command(CLOUD, {**extra, "inputs": "gs://b/a/*.mp3,gs://b/c/*.wav"}))
    assert command[:4] == ["gcloud", "dataflow", "flex-template", "run"]
    assert f"--template-file-gcs-location=gs://atsep-bucket/templates/{job}.json" in command
    assert "--worker-machine-type=n1-highmem-4" in command
    assert "--parameters=output=gs://atsep-bucket/x" in command
    names = {arg.split("=", 1)[1].removeprefix("^~^").split("=", 1)[0]
             for arg in command if arg.startswith("--parameters=")}
    assert names <= {parameter_name(action) for action in job_actions(job_parser(job))}
    if job == "separate":  # a value with commas uses gcloud's alternate delimiter
        assert "--parameters=^~^inputs=gs://b/a/*.mp3,gs://b/c/*.wav" in command
    # the launcher sees the machine type too, and sizes the harness threads for it, not for its default
    assert "--additional-pipeline-options=machine_type=n1-highmem-4" in command


@pytest.mark.parametrize("job", ["preprocess", "separate"])
def test_dataflow_workers_get_the_jobs_machine_type_by_default(job):
    from infra.flex.launcher import SIZING, worker_sizing

    command = cloud.dataflow_command(CLOUD, job, {}, {"additional-pipeline-options": "a=1"})
    machine = SIZING[job].machine_type
    assert f"--worker-machine-type={machine}" in command
    options = next(arg for arg in command if arg.startswith("--additional-pipeline-options="))
    assert options == f"--additional-pipeline-options=machine_type={machine},a=1"
    # what the launcher receives from it: a machine type it need not default
    launched = ["--" + option for option in options.split("=", 1)[1].split(",")]
    assert not any(arg.startswith("--machine_type") for arg in worker_sizing(job, launched, 1800))


def test_images_come_from_one_dockerfile_and_templates_use_the_stored_metadata():
    targets = [command[command.index("--target") + 1] for command in cloud.image_commands(CLOUD)
               if command[1] == "build"]
    dockerfile = (REPO / "infra" / "Dockerfile").read_text()
    assert targets and all(f" AS {target}\n" in dockerfile for target in targets)
    for command in cloud.flex_template_commands(CLOUD):
        metadata = next(arg for arg in command if arg.startswith("--metadata-file=")).split("=", 1)[1]
        assert (REPO / metadata).is_file()


def test_make_dry_run_prints_the_exact_commands(tmp_path):
    makefile = tmp_path / "Makefile"
    makefile.write_text(f"BIN := {REPO}/.venv/bin\ninclude {REPO}/infra/cloud.mk\n")
    result = subprocess.run(["make", "-s", "-f", str(makefile), "-C", str(REPO), "dataflow-preprocess",
                             "PROJECT=atsep-project", "BUCKET=atsep-bucket", "DRY_RUN=1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "gcloud dataflow flex-template run atsep-preprocess-" in result.stdout
    assert "--parameters=input=gs://atsep-bucket/musdb" in result.stdout
    assert "--worker-machine-type=n2-highmem-4" in result.stdout
    sized = subprocess.run(["make", "-s", "-f", str(makefile), "-C", str(REPO), "dataflow-separate",
                            "PROJECT=atsep-project", "BUCKET=atsep-bucket", "DRY_RUN=1", "MACHINE=n2-standard-4"],
                           capture_output=True, text=True, timeout=120)
    assert sized.returncode == 0, sized.stderr
    assert "--worker-machine-type=n2-standard-4" in sized.stdout
    assert "--additional-pipeline-options=machine_type=n2-standard-4" in sized.stdout
    missing = subprocess.run(["make", "-s", "-f", str(makefile), "-C", str(REPO), "vertex-train"],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "set PROJECT and BUCKET" in missing.stderr
