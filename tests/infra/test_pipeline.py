"""The retrain pipeline compiles (KFP v2) and its spec wires check -> preprocess -> wait -> train -> evaluate
-> promote on the right images with typed parameters; its schedule is created once, then updated in place,
against a loopback HTTP server that plays Vertex AI's schedules API."""
from __future__ import annotations

import copy
import http.server
import json
import re
import threading
import urllib.parse

import pytest

from atsep import retrain
from infra import cloud
from infra.pipelines.retrain import compile_pipeline, gpu_image

CLOUD = cloud.Cloud("atsep-project", "europe-west1", "atsep-bucket", "v7")


@pytest.fixture(scope="module", params=[False, True], ids=["cpu", "gpu"])
def spec(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("kfp") / "retrain.json"
    compile_pipeline(CLOUD.image(), str(path), gpu=request.param)
    return {"gpu": request.param, **json.loads(path.read_text())}


def _tasks(spec) -> dict:
    return spec["root"]["dag"]["tasks"]


def _pipeline_spec(spec) -> dict:
    return {key: value for key, value in spec.items() if key != "gpu"}


def test_stages_run_in_order(spec):
    tasks = _tasks(spec)
    assert set(tasks) == {"check", "dataflow-flex-template", "wait-gcp-resources", "train", "evaluate", "promote"}
    after = {name: task.get("dependentTasks", []) for name, task in tasks.items()}
    assert after == {"check": [], "dataflow-flex-template": ["check"], "wait-gcp-resources": ["dataflow-flex-template"],
                     "train": ["wait-gcp-resources"], "evaluate": ["train"], "promote": ["evaluate"]}
    waited = tasks["wait-gcp-resources"]["inputs"]["parameters"]["gcp_resources"]["taskOutputParameter"]
    assert waited["producerTask"] == "dataflow-flex-template"


def test_preprocess_launches_the_flex_template_with_its_real_parameters(spec):
    from infra.flex.launcher import job_actions, job_parser, parameter_name

    inputs = _tasks(spec)["dataflow-flex-template"]["inputs"]["parameters"]
    assert inputs["container_spec_gcs_path"] == {"componentInputParameter": "preprocess_template"}
    assert inputs["parameters"] == {"componentInputParameter": "preprocess_parameters"}
    assert inputs["sdk_container_image"]["runtimeValue"]["constant"] == CLOUD.image()
    given = cloud.pipeline_parameters(CLOUD, {})["preprocess_parameters"]
    assert set(given) <= {parameter_name(action) for action in job_actions(job_parser("preprocess"))}


def test_every_step_runs_the_project_image_and_real_commands(spec):
    executors = spec["deploymentSpec"]["executors"]
    for name, stage in (("exec-check", "check"), ("exec-evaluate", "evaluate"), ("exec-promote", "promote")):
        container = executors[name]["container"]
        assert container["image"] == CLOUD.image()
        assert container["command"] == ["python", "-m", "atsep.retrain", stage]
        flags = [arg for arg in container["args"] if isinstance(arg, str) and arg.startswith("--")]
        sample = {"--split": "test", "--min_improvement": "0.5", "--min_over_mixture": "6", "--kept_exit_code": "0"}
        args, rest = retrain.parse_args([stage, *(item for flag in flags for item in (flag, sample.get(flag, "v")))])
        assert not rest and all(getattr(args, flag[2:]) is not None for flag in flags)
        assert args.stage == stage
    # a scheduled run that keeps the current model has not failed
    promote_args = executors["exec-promote"]["container"]["args"]
    assert promote_args[promote_args.index("--kept_exit_code") + 1] == "0"


def _train_container(spec) -> tuple[dict, dict]:
    component = spec["components"][_tasks(spec)["train"]["componentRef"]["name"]]
    pools = component["inputDefinitions"]["parameters"]["worker_pool_specs"]["defaultValue"]
    return pools[0]["container_spec"], pools[0]["machine_spec"]


def test_training_is_a_vertex_custom_job_with_the_trainers_flags(spec):
    from trainer.task import parse_args

    container, machine = _train_container(spec)
    assert container["command"] == ["python", "-m", "trainer.task"]
    flags = [arg for arg in container["args"] if arg.startswith("--")]
    assert parse_args([item for flag in flags for item in (flag, "1" if flag != "--strategy" else "default")])
    if spec["gpu"]:
        assert machine["accelerator_type"] == "NVIDIA_L4" and machine["accelerator_count"] == 1
        assert _tasks(spec)["train"]["inputs"]["parameters"]["strategy"]["runtimeValue"]["constant"] == "mirrored"
    else:
        assert "accelerator_type" not in machine or not machine["accelerator_type"]


def test_gpu_training_runs_the_cuda_image_and_nothing_else_does(spec):
    container, _ = _train_container(spec)
    assert container["image_uri"] == (CLOUD.image("atsep-gpu") if spec["gpu"] else CLOUD.image())
    others = [executor["container"]["image"] for name, executor in spec["deploymentSpec"]["executors"].items()
              if name in ("exec-check", "exec-evaluate", "exec-promote")]
    assert others == [CLOUD.image()] * 3
    assert gpu_image(CLOUD.image()) == CLOUD.image("atsep-gpu")
    with pytest.raises(ValueError):
        gpu_image("example.com/other/name:v1")


PLACEHOLDER = re.compile(r"\{\{\$[^}]*\}\}")


def _strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def test_only_documented_placeholders(spec):
    """No f-string or dict over pipeline parameters (they compile to `pipelinechannel--` inputs substituted
    inside constants); in the DAG, the job name only ever as a whole task argument."""
    text = json.dumps(_pipeline_spec(spec))
    assert "pipelinechannel--" not in text
    for name, task in _tasks(spec).items():
        for value in task["inputs"].get("parameters", {}).values():
            constant = value.get("runtimeValue", {}).get("constant")
            for string in _strings(constant):
                assert not PLACEHOLDER.search(string) or string == "{{$.pipeline_job_name}}", (name, string)
    # inside the containers: a component's own inputs (InputValuePlaceholder / ConcatPlaceholder) only
    for executor in spec["deploymentSpec"]["executors"].values():
        for string in _strings(executor.get("container", {}).get("args", [])):
            for found in PLACEHOLDER.findall(string):
                assert re.fullmatch(r"\{\{\$\.inputs\.parameters\['\w+'\]\}\}", found) or found.startswith(
                    "{{$.outputs."), found


def test_parameters_keep_their_types(spec):
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert declared["min_improvement"]["parameterType"] == "NUMBER_DOUBLE"
    assert declared["min_over_mixture"]["parameterType"] == "NUMBER_DOUBLE"
    assert declared["max_dataflow_workers"]["parameterType"] == "NUMBER_INTEGER"
    assert declared["preprocess_parameters"]["parameterType"] == "STRUCT"
    assert declared["split"]["defaultValue"] == "test"
    body = cloud.schedule_request(CLOUD, _pipeline_spec(spec), cloud.DEFAULT_CRON,
                                  {"min_improvement": "1", "max_dataflow_workers": "5"})
    values = json.loads(json.dumps(body))["createPipelineJobRequest"]["pipelineJob"]["runtimeConfig"]["parameterValues"]
    kinds = {"STRING": str, "NUMBER_DOUBLE": float, "NUMBER_INTEGER": int, "STRUCT": dict}
    assert set(values) == set(declared)
    for name, value in values.items():
        assert type(value) is kinds[declared[name]["parameterType"]], (name, value)
    assert values["min_improvement"] == 1.0 and values["max_dataflow_workers"] == 5
    assert values["min_over_mixture"] == retrain.DEFAULT_MIN_OVER_MIXTURE  # the compiled default, still a float
    assert '"max_dataflow_workers": 5,' in json.dumps(values, sort_keys=True)  # 5, never 5.0
    for bad in ({"max_dataflow_workers": "2.5"}, {"min_improvement": "much"}, {"no_such_parameter": "1"},
                {"config": "configs/x.json"}):
        with pytest.raises(ValueError):
            cloud.schedule_request(CLOUD, _pipeline_spec(spec), cloud.DEFAULT_CRON, bad)


def test_derived_paths_follow_their_sources():
    values = cloud.pipeline_parameters(CLOUD, {"config": "gs://b2/configs/other.json", "songs": "gs://b2/songs"})
    assert values["trainer_config"] == "/gcs/b2/configs/other.json"
    assert values["preprocess_parameters"] == {"input": "gs://b2/songs", "output": CLOUD.gs("retrain", "records"),
                                               "config": "gs://b2/configs/other.json"}


def test_schedule_request_carries_the_compiled_spec_and_every_required_parameter(spec):
    body = cloud.schedule_request(CLOUD, _pipeline_spec(spec), cloud.DEFAULT_CRON, {})
    job = body["createPipelineJobRequest"]["pipelineJob"]
    assert body["cron"].startswith("TZ=") and body["maxConcurrentRunCount"] == "1"
    assert body["displayName"] == cloud.SCHEDULE_NAME
    assert job["pipelineSpec"] == _pipeline_spec(spec)
    declared = spec["root"]["inputDefinitions"]["parameters"]
    required = {name for name, param in declared.items() if not param.get("isOptional")}
    given = set(job["runtimeConfig"]["parameterValues"])
    assert required <= given <= set(declared)
    assert job["serviceAccount"] == CLOUD.account("pipelines")
    assert cloud.schedules_url(CLOUD).startswith("https://europe-west1-aiplatform.googleapis.com/v1/")
    assert cloud.schedules_url(CLOUD).endswith("/projects/atsep-project/locations/europe-west1/schedules")


# --- create or update, against a loopback server --------------------------------------------------------

class FakeVertex(http.server.BaseHTTPRequestHandler):
    """Vertex AI's schedules list / create / patch, enough to hold the client to the API's contract:
    list pages one schedule at a time and honours `display_name="..."`; patch needs an updateMask."""

    store: dict[str, dict]
    log: list[tuple[str, str, dict]]

    def log_message(self, *args):  # quiet
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _request(self) -> tuple[str, dict, dict]:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        query = dict(urllib.parse.parse_qsl(url.query))
        self.log.append((self.command, url.path, query))
        return url.path, query, body

    def do_GET(self):
        path, query, _ = self._request()
        match = re.fullmatch(r'display_name="([^"]*)"', query.get("filter", ""))
        wanted = [s for s in self.store.values() if not match or s["displayName"] == match.group(1)]
        start = int(query.get("pageToken") or 0)
        page = {"schedules": wanted[start:start + 1]}
        if start + 1 < len(wanted):
            page["nextPageToken"] = str(start + 1)
        self._reply(200, page)

    def do_POST(self):
        path, _, body = self._request()
        name = f"{path[len('/v1/'):]}/{len(self.store) + 1}"
        self.store[name] = {**body, "name": name, "state": "ACTIVE"}
        self._reply(200, self.store[name])

    def do_PATCH(self):
        path, query, body = self._request()
        name = path[len("/v1/"):]
        if name not in self.store or not query.get("updateMask"):
            return self._reply(400, {"error": "unknown schedule or no updateMask"})
        for field in query["updateMask"].split(","):
            self.store[name][field] = body[field]
        self._reply(200, self.store[name])


@pytest.fixture
def vertex():
    handler = type("Handler", (FakeVertex,), {"store": {}, "log": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _schedule(spec, cron: str = cloud.DEFAULT_CRON, extra: dict | None = None) -> dict:
    return cloud.schedule_request(CLOUD, copy.deepcopy(_pipeline_spec(spec)), cron, extra or {})


@pytest.mark.parametrize("spec", [False], indirect=True, ids=["cpu"])
def test_schedule_is_created_once_then_updated_in_place(spec, vertex):
    import requests

    handler, endpoint = vertex
    parent = f"projects/{CLOUD.project}/locations/{CLOUD.region}/schedules"
    handler.store[f"{parent}/0"] = {"name": f"{parent}/0", "displayName": "someone-elses", "state": "ACTIVE"}
    handler.store[f"{parent}/00"] = {"name": f"{parent}/00", "displayName": cloud.SCHEDULE_NAME,
                                     "state": "COMPLETED"}  # an ended one cannot be updated: not a match
    session = requests.Session()
    action, first = cloud.create_schedule(session, CLOUD, _schedule(spec), endpoint)
    assert action == "created" and first["displayName"] == cloud.SCHEDULE_NAME
    action, second = cloud.create_schedule(session, CLOUD, _schedule(spec, "TZ=Etc/UTC 0 4 * * 2",
                                                                     {"min_improvement": "0.75"}), endpoint)
    assert action == "updated" and second["name"] == first["name"]
    live = [s for s in handler.store.values() if s["displayName"] == cloud.SCHEDULE_NAME and s["state"] == "ACTIVE"]
    assert len(live) == 1 and live[0]["cron"] == "TZ=Etc/UTC 0 4 * * 2"
    values = live[0]["createPipelineJobRequest"]["pipelineJob"]["runtimeConfig"]["parameterValues"]
    assert values["min_improvement"] == 0.75 and isinstance(values["max_dataflow_workers"], int)
    posts = [entry for entry in handler.log if entry[0] == "POST"]
    patches = [entry for entry in handler.log if entry[0] == "PATCH"]
    assert len(posts) == 1 and len(patches) == 1
    assert patches[0][1] == f"/v1/{first['name']}"
    assert set(patches[0][2]["updateMask"].split(",")) == {"cron", "maxConcurrentRunCount", "allowQueueing",
                                                           "createPipelineJobRequest"}
    assert all(query.get("filter") == f'display_name="{cloud.SCHEDULE_NAME}"'
               for method, _, query in handler.log if method == "GET")


@pytest.mark.parametrize("spec", [False], indirect=True, ids=["cpu"])
def test_two_live_schedules_with_the_name_are_refused(spec, vertex):
    import requests

    handler, endpoint = vertex
    parent = f"projects/{CLOUD.project}/locations/{CLOUD.region}/schedules"
    for number in (1, 2):
        handler.store[f"{parent}/{number}"] = {"name": f"{parent}/{number}", "displayName": cloud.SCHEDULE_NAME,
                                               "state": "PAUSED" if number == 1 else "ACTIVE"}
    with pytest.raises(RuntimeError, match="2 live schedules"):
        cloud.create_schedule(requests.Session(), CLOUD, _schedule(spec), endpoint)
    assert not [entry for entry in handler.log if entry[0] in ("POST", "PATCH")]


def test_make_target_creates_then_updates(vertex, tmp_path, monkeypatch, capsys):
    """`make retrain-schedule` twice (the command it runs), with the GPU image for training."""
    import requests

    handler, endpoint = vertex
    monkeypatch.chdir(tmp_path)
    for cron in ("TZ=Etc/UTC 0 3 * * 1", "TZ=Etc/UTC 0 5 * * 1"):
        assert cloud.retrain_schedule(CLOUD, True, cron, {}, dry_run=False, session=requests.Session(),
                                      endpoint=endpoint) == 0
    assert [s["cron"] for s in handler.store.values()] == ["TZ=Etc/UTC 0 5 * * 1"]
    sent = json.loads((tmp_path / "build" / "schedule.json").read_text())
    container = _train_container(sent["createPipelineJobRequest"]["pipelineJob"]["pipelineSpec"])[0]
    assert container["image_uri"] == CLOUD.image("atsep-gpu")
    assert "updated" in capsys.readouterr().out
