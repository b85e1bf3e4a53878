"""The retrain pipeline compiles (KFP v2) and its spec wires preprocess -> wait -> train -> evaluate ->
promote, on the project's image, with a schedule request Vertex AI can take as it is."""
from __future__ import annotations

import json

import pytest

from atsep import retrain
from infra import cloud
from infra.pipelines.retrain import compile_pipeline

CLOUD = cloud.Cloud("atsep-project", "europe-west1", "atsep-bucket", "v7")


@pytest.fixture(scope="module", params=[False, True], ids=["cpu", "gpu"])
def spec(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("kfp") / "retrain.json"
    compile_pipeline(CLOUD.image(), str(path), gpu=request.param)
    return {"gpu": request.param, **json.loads(path.read_text())}


def _tasks(spec) -> dict:
    return spec["root"]["dag"]["tasks"]


def test_stages_run_in_order(spec):
    tasks = _tasks(spec)
    assert set(tasks) == {"dataflow-flex-template", "wait-gcp-resources", "train", "evaluate", "promote"}
    after = {name: task.get("dependentTasks", []) for name, task in tasks.items()}
    assert after == {"dataflow-flex-template": [], "wait-gcp-resources": ["dataflow-flex-template"],
                     "train": ["wait-gcp-resources"], "evaluate": ["train"], "promote": ["evaluate"]}
    waited = tasks["wait-gcp-resources"]["inputs"]["parameters"]["gcp_resources"]["taskOutputParameter"]
    assert waited["producerTask"] == "dataflow-flex-template"


def test_preprocess_launches_the_flex_template_with_its_real_parameters(spec):
    from infra.flex.launcher import job_actions, job_parser, parameter_name

    inputs = _tasks(spec)["dataflow-flex-template"]["inputs"]["parameters"]
    assert inputs["container_spec_gcs_path"]["runtimeValue"]["constant"].endswith("/preprocess.json")
    parameters = inputs["parameters"]["runtimeValue"]["constant"]
    assert set(parameters) <= {parameter_name(action) for action in job_actions(job_parser("preprocess"))}
    assert inputs["sdk_container_image"]["runtimeValue"]["constant"] == CLOUD.image()


def test_every_step_runs_the_project_image_and_real_commands(spec):
    executors = spec["deploymentSpec"]["executors"]
    for name, module in (("exec-evaluate", "evaluate"), ("exec-promote", "promote")):
        container = executors[name]["container"]
        assert container["image"] == CLOUD.image()
        assert container["command"] == ["python", "-m", "atsep.retrain", module]
        flags = [arg for arg in container["args"] if isinstance(arg, str) and arg.startswith("--")]
        sample = {"--split": "valid", "--min_improvement": "0.5"}
        args, rest = retrain.parse_args([module, *(item for flag in flags for item in (flag, sample.get(flag, "v")))])
        assert not rest and all(getattr(args, flag[2:]) is not None for flag in flags)
        assert args.stage == module


def test_training_is_a_vertex_custom_job_with_the_trainers_flags(spec):
    from trainer.task import parse_args

    component = spec["components"][spec["root"]["dag"]["tasks"]["train"]["componentRef"]["name"]]
    defaults = component["inputDefinitions"]["parameters"]
    pools = defaults["worker_pool_specs"]["defaultValue"]
    container = pools[0]["container_spec"]
    assert container["image_uri"] == CLOUD.image()
    assert container["command"] == ["python", "-m", "trainer.task"]
    flags = [arg for arg in container["args"] if arg.startswith("--")]
    assert parse_args([item for flag in flags for item in (flag, "1" if flag != "--strategy" else "default")])
    machine = pools[0]["machine_spec"]
    if spec["gpu"]:
        assert machine["accelerator_type"] == "NVIDIA_L4" and machine["accelerator_count"] == 1
        assert "mirrored" in json.dumps(spec["root"]["dag"]["tasks"]["train"])
    else:
        assert "accelerator_type" not in machine or not machine["accelerator_type"]


def test_schedule_request_carries_the_compiled_spec_and_every_required_parameter(spec):
    body = cloud.schedule_request(CLOUD, spec, cloud.DEFAULT_CRON, {})
    job = body["createPipelineJobRequest"]["pipelineJob"]
    assert body["cron"].startswith("TZ=") and body["maxConcurrentRunCount"] == "1"
    assert job["pipelineSpec"] is spec
    declared = spec["root"]["inputDefinitions"]["parameters"]
    required = {name for name, param in declared.items() if not param.get("isOptional")}
    given = set(job["runtimeConfig"]["parameterValues"])
    assert required <= given <= set(declared)
    assert job["serviceAccount"] == CLOUD.account("pipelines")
    assert cloud.schedules_url(CLOUD).endswith("/projects/atsep-project/locations/europe-west1/schedules")
