"""The exact cloud commands behind `make dataflow-preprocess`, `dataflow-separate`, `vertex-train`,
`retrain-schedule`, `image`, `flex-templates` and `stage-config` (infra/cloud.mk), built from PROJECT, REGION and BUCKET.

    python -m infra.cloud COMMAND --project P --region R --bucket B [--dry_run] [KEY=VALUE ...]

Every command is printed (shell-quoted, ready to paste) before it runs; --dry_run only prints, and
writes the files a command would send (rendered job specs, the compiled pipeline, the schedule request)
under build/. Names follow infra/terraform: repository `atsep`, service accounts atsep-dataflow,
atsep-trainer and atsep-pipelines. Bucket layout: musdb/ (songs), records/, registry/, templates/,
retrain/ (work), pipeline-root/, tmp/, catalogue/ and stems/.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import string
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = Path("build")
JOBS = ("preprocess", "separate")
DEFAULT_CRON = "TZ=Etc/UTC 0 3 * * 1"  # Mondays 03:00 UTC


@dataclasses.dataclass(frozen=True)
class Cloud:
    project: str
    region: str
    bucket: str
    tag: str = "latest"

    def image(self, name: str = "atsep") -> str:
        return f"{self.region}-docker.pkg.dev/{self.project}/atsep/{name}:{self.tag}"

    def gs(self, *parts: str) -> str:
        return "/".join([f"gs://{self.bucket}", *parts])

    def account(self, role: str) -> str:
        return f"atsep-{role}@{self.project}.iam.gserviceaccount.com"


def stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def image_commands(cloud: Cloud) -> list[list[str]]:
    """Build and push the worker image, its CUDA twin and the two template launchers (one Dockerfile)."""
    commands = []
    for target, name in (("worker", "atsep"), ("worker-gpu", "atsep-gpu"), *((f"{job}-template",
                                                                              f"{job}-template") for job in JOBS)):
        commands.append(["docker", "build", "-f", "infra/Dockerfile", "--target", target,
                         "--build-arg", f"WORKER_IMAGE={cloud.image()}", "-t", cloud.image(name), "."])
        commands.append(["docker", "push", cloud.image(name)])
    return commands


def flex_template_commands(cloud: Cloud) -> list[list[str]]:
    return [["gcloud", "dataflow", "flex-template", "build", cloud.gs("templates", f"{job}.json"),
             f"--project={cloud.project}", f"--image={cloud.image(f'{job}-template')}", "--sdk-language=PYTHON",
             f"--metadata-file=infra/flex/{job}.json"] for job in JOBS]


def parameter_flags(parameters: dict[str, str]) -> list[str]:
    """One --parameters flag each; values holding commas use gcloud's `^~^` delimiter escape."""
    return [f"--parameters={'^~^' if ',' in str(value) else ''}{name}={value}"
            for name, value in parameters.items()]


def dataflow_command(cloud: Cloud, job: str, parameters: dict[str, str], options: dict[str, str]) -> list[str]:
    """`gcloud dataflow flex-template run` of one template, on the project's worker service account.

    The workers' machine type is the job's in infra/flex/launcher.py's SIZING unless
    dataflow.worker-machine-type= names another; it goes to Dataflow (--worker-machine-type) and, as a
    pipeline option, to the template's launcher, which matches the harness threads to its vCPUs."""
    from infra.flex.launcher import SIZING

    machine = options.get("worker-machine-type", SIZING[job].machine_type)
    pipeline_options = ",".join(filter(None, [f"machine_type={machine}", options.get("additional-pipeline-options")]))
    settings = {"max-workers": "20", **options, "worker-machine-type": machine,
                "additional-pipeline-options": pipeline_options}
    return ["gcloud", "dataflow", "flex-template", "run", f"atsep-{job}-{stamp()}", f"--project={cloud.project}",
            f"--region={cloud.region}", f"--template-file-gcs-location={cloud.gs('templates', f'{job}.json')}",
            f"--service-account-email={cloud.account('dataflow')}", f"--temp-location={cloud.gs('tmp')}",
            f"--staging-location={cloud.gs('tmp', 'staging')}",
            *(f"--{key}={value}" for key, value in settings.items()), *parameter_flags(parameters)]


def preprocess_command(cloud: Cloud, extra: dict[str, str]) -> list[str]:
    parameters = {"input": cloud.gs("musdb"), "output": cloud.gs("records"), **_job_params(extra)}
    return dataflow_command(cloud, "preprocess", parameters, _options(extra))


def separate_command(cloud: Cloud, extra: dict[str, str], dry_run: bool = True) -> list[str]:
    """Separate gs://BUCKET/catalogue/* with the registry's current model unless model_dir= is given."""
    parameters = {"inputs": cloud.gs("catalogue", "*"), "output": cloud.gs("stems"), **_job_params(extra)}
    parameters.setdefault("model_dir", cloud.gs("registry", "versions", _current(cloud, dry_run), "model"))
    return dataflow_command(cloud, "separate", parameters, _options(extra))


def _current(cloud: Cloud, dry_run: bool) -> str:
    """The registry's current version; a dry run does not read the bucket and prints a placeholder."""
    if dry_run:
        return "CURRENT"  # `atsep retrain status --registry gs://BUCKET/registry` names it
    from atsep.retrain import current_version

    version = current_version(cloud.gs("registry"))
    if version is None:
        raise SystemExit(f"nothing promoted in {cloud.gs('registry')} yet: pass model_dir=gs://...")
    return version


def stage_config_command(cloud: Cloud, extra: dict[str, str]) -> list[str]:
    """The config that training (Vertex AI and the retrain pipeline) and preprocess read."""
    return ["gcloud", "storage", "cp", extra.get("config", "configs/default-model.json"),
            cloud.gs("configs", "retrain.json"), f"--project={cloud.project}"]


def _job_params(extra: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in extra.items() if not key.startswith("dataflow.")}


def _options(extra: dict[str, str]) -> dict[str, str]:
    """KEY=VALUE pairs named dataflow.<flag> become gcloud flags (e.g. dataflow.worker-machine-type=...)."""
    return {key[len("dataflow."):]: value for key, value in extra.items() if key.startswith("dataflow.")}


def render_vertex_spec(cloud: Cloud, gpu: bool, extra: dict[str, str]) -> str:
    """infra/vertex/train-{cpu,gpu}.yaml with the project's values; every ${NAME} must be filled."""
    version = extra.get("VERSION", stamp())
    values = {"IMAGE": cloud.image("atsep-gpu" if gpu else "atsep"), "RECORDS": cloud.gs("records"),
              "CONFIG": f"/gcs/{cloud.bucket}/configs/retrain.json",  # read through Vertex AI's GCS FUSE mount
              "DESCRIPTION": f"Vertex AI training {version} from {cloud.gs('records')}",
              "OUTPUT": cloud.gs("training", version), "SERVICE_ACCOUNT": cloud.account("trainer"),
              **{key: value for key, value in extra.items() if key != "VERSION"}}
    template = (HERE / "vertex" / f"train-{'gpu' if gpu else 'cpu'}.yaml").read_text()
    return string.Template(template).substitute(values)


def vertex_commands(cloud: Cloud, gpu: bool, extra: dict[str, str]) -> tuple[list[list[str]], dict[Path, str]]:
    spec = BUILD / f"vertex-train-{'gpu' if gpu else 'cpu'}.yaml"
    command = ["gcloud", "ai", "custom-jobs", "create", f"--project={cloud.project}", f"--region={cloud.region}",
               f"--display-name=atsep-train-{stamp()}", f"--config={spec}"]
    return [command], {spec: render_vertex_spec(cloud, gpu, extra)}


SCHEDULE_NAME = "atsep-retrain-weekly"  # the schedule's display name: the key it is found and updated by
# what an update replaces (Schedule fields; the display name is the key, the request type cannot change)
SCHEDULE_UPDATE_MASK = "cron,maxConcurrentRunCount,allowQueueing,createPipelineJobRequest"
API_ROOT = "https://{region}-aiplatform.googleapis.com/v1"


def pipeline_parameters(cloud: Cloud, extra: dict[str, str]) -> dict[str, object]:
    """The retrain pipeline's parameters from the bucket layout; KEY=VALUE settings override them. Every
    path a step needs is spelled out here (the pipeline derives none: no f-strings over parameters)."""
    values: dict[str, object] = {
        "project": cloud.project, "region": cloud.region, "songs": cloud.gs("musdb"),
        "records": cloud.gs("retrain", "records"), "work": cloud.gs("retrain"), "registry": cloud.gs("registry"),
        "config": cloud.gs("configs", "retrain.json"), "preprocess_template": cloud.gs("templates", "preprocess.json"),
        "dataflow_temp": cloud.gs("retrain", "dataflow-tmp"), "dataflow_service_account": cloud.account("dataflow"),
        "trainer_service_account": cloud.account("trainer"), **extra}
    config = str(values["config"])
    if not config.startswith("gs://"):
        raise ValueError(f"config={config} must be a gs:// object (training reads it through /gcs/)")
    values.setdefault("trainer_config", "/gcs/" + config[len("gs://"):])  # Vertex AI's Cloud Storage FUSE mount
    values.setdefault("preprocess_parameters", {"input": values["songs"], "output": values["records"],
                                                "config": config})
    return values


def typed_parameters(pipeline_spec: dict, values: dict[str, object]) -> dict[str, object]:
    """Every declared pipeline parameter with a value of its declared type (a NUMBER_INTEGER stays an int,
    a NUMBER_DOUBLE a float, even from a KEY=VALUE string or the compiler's `20.0` default)."""
    declared = pipeline_spec["root"]["inputDefinitions"]["parameters"]
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ValueError(f"the retrain pipeline has no parameters {unknown}; it takes {sorted(declared)}")
    typed = {}
    for name, parameter in sorted(declared.items()):
        if name in values:
            typed[name] = _typed(name, parameter["parameterType"], values[name])
        elif "defaultValue" in parameter:
            typed[name] = _typed(name, parameter["parameterType"], parameter["defaultValue"])
        else:
            raise ValueError(f"the retrain pipeline needs a value for {name}")
    return typed


def _typed(name: str, kind: str, value: object) -> object:
    try:
        if kind == "NUMBER_INTEGER":
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, bool) or not float(number).is_integer():
                raise ValueError("not a whole number")
            return int(number)
        if kind == "NUMBER_DOUBLE":
            if isinstance(value, bool):
                raise ValueError("not a number")
            return float(value)
        if kind == "BOOLEAN":
            if isinstance(value, bool):
                return value
            return {"true": True, "false": False}[str(value).lower()]
        if kind in ("STRUCT", "LIST"):
            parsed = json.loads(value) if isinstance(value, str) else value
            if not isinstance(parsed, dict if kind == "STRUCT" else list):
                raise ValueError(f"not a JSON {'object' if kind == 'STRUCT' else 'array'}")
            return parsed
        return str(value)
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{name}={value!r} is not a {kind} ({error})") from error


def schedule_request(cloud: Cloud, pipeline_spec: dict, cron: str, extra: dict[str, str]) -> dict:
    """The Schedule resource (the body of `schedules.create` and `schedules.patch`) for the retrain pipeline."""
    parameters = typed_parameters(pipeline_spec, pipeline_parameters(cloud, extra))
    return {"displayName": SCHEDULE_NAME, "cron": cron, "maxConcurrentRunCount": "1",
            "allowQueueing": False,
            "createPipelineJobRequest": {
                "parent": f"projects/{cloud.project}/locations/{cloud.region}",
                "pipelineJob": {"displayName": "atsep-retrain", "pipelineSpec": pipeline_spec,
                                "serviceAccount": cloud.account("pipelines"),
                                "runtimeConfig": {"gcsOutputDirectory": cloud.gs("pipeline-root"),
                                                  "parameterValues": parameters}}}}


def api_root(cloud: Cloud, endpoint: str = "") -> str:
    """Vertex AI's regional REST root; `endpoint` (scheme://host[:port]) replaces the host, e.g. in tests."""
    return f"{endpoint.rstrip('/')}/v1" if endpoint else API_ROOT.format(region=cloud.region)


def schedules_url(cloud: Cloud, endpoint: str = "") -> str:
    return f"{api_root(cloud, endpoint)}/projects/{cloud.project}/locations/{cloud.region}/schedules"


def find_schedule(session, url: str, display_name: str) -> dict | None:
    """The live (active or paused) schedule called `display_name`, through every page of `schedules.list`;
    None when there is none. Two live ones with that name are an error: which one to update is unclear."""
    found, token = [], ""
    while True:
        params = {"filter": f'display_name="{display_name}"', **({"pageToken": token} if token else {})}
        response = session.get(url, params=params)
        response.raise_for_status()
        page = response.json()
        found += [schedule for schedule in page.get("schedules", [])
                  if schedule.get("displayName") == display_name and schedule.get("state") != "COMPLETED"]
        token = page.get("nextPageToken", "")
        if not token:
            break
    if len(found) > 1:
        raise RuntimeError(f"{len(found)} live schedules are called {display_name!r} "
                           f"({', '.join(schedule['name'] for schedule in found)}): delete all but one")
    return found[0] if found else None


def create_schedule(session, cloud: Cloud, body: dict, endpoint: str = "") -> tuple[str, dict]:
    """Create the schedule, or update the one with its display name in place: ("created" | "updated", Schedule).
    `session` is a requests.Session (google-auth's AuthorizedSession in real use)."""
    url = schedules_url(cloud, endpoint)
    existing = find_schedule(session, url, body["displayName"])
    if existing is None:
        response = session.post(url, json=body)
        action = "created"
    else:
        response = session.patch(f"{api_root(cloud, endpoint)}/{existing['name']}",
                                 params={"updateMask": SCHEDULE_UPDATE_MASK}, json=body)
        action = "updated"
    response.raise_for_status()
    return action, response.json()


def authorized_session():
    """Application Default Credentials (google-auth, already a dependency)."""
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    return AuthorizedSession(credentials)


def retrain_schedule(cloud: Cloud, gpu: bool, cron: str, extra: dict[str, str], dry_run: bool,
                     session=None, endpoint: str = "") -> int:
    """Compile the pipeline (GPU training on the atsep-gpu image), then create or update its schedule."""
    from infra.pipelines.retrain import compile_pipeline

    BUILD.mkdir(exist_ok=True)
    spec_path = Path(compile_pipeline(cloud.image(), str(BUILD / "retrain.json"), gpu,
                                      cloud.image("atsep-gpu") if gpu else cloud.image()))
    try:
        body = schedule_request(cloud, json.loads(spec_path.read_text()), cron, extra)
    except ValueError as error:  # a KEY=VALUE the pipeline does not take, or of the wrong type
        raise SystemExit(f"retrain-schedule: {error}") from error
    body_path = BUILD / "schedule.json"
    body_path.write_text(json.dumps(body, indent=2) + "\n")
    # the same requests by hand (double quotes: the shell fills in the token)
    auth = '-H "Authorization: Bearer $(gcloud auth print-access-token)" -H "Content-Type: application/json"'
    url = schedules_url(cloud, endpoint)
    print(f"# create or update by display name: list, then PATCH the live one called {SCHEDULE_NAME} or POST")
    print(f"curl {auth} '{url}?filter=display_name%3D%22{SCHEDULE_NAME}%22'")
    print(f"curl -X PATCH {auth} --data @{body_path} "
          f"'{api_root(cloud, endpoint)}/NAME_FROM_THE_LIST?updateMask={SCHEDULE_UPDATE_MASK}'")
    print(f"curl -X POST {auth} --data @{body_path} {url}")
    if not dry_run:
        action, schedule = create_schedule(session or authorized_session(), cloud, body, endpoint)
        print(f"{action} {schedule.get('name')}")
        print(json.dumps({key: schedule.get(key) for key in ("name", "displayName", "cron", "state", "nextRunTime")},
                         indent=2))
    return 0


def execute(commands: list[list[str]], files: dict[Path, str], dry_run: bool) -> int:
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for command in commands:
        print(shlex.join(command), flush=True)
        if not dry_run and subprocess.run(command).returncode != 0:
            return 1
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.cloud", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("image", "flex-templates", "stage-config", "dataflow-preprocess", "dataflow-separate",
                                            "vertex-train", "retrain-schedule"))
    parser.add_argument("--project", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--bucket", required=True, help="bucket name, without gs://")
    parser.add_argument("--tag", default="latest", help="image tag")
    parser.add_argument("--gpu", action="store_true", help="vertex-train / retrain-schedule: train on a GPU")
    parser.add_argument("--cron", default=DEFAULT_CRON, help="retrain-schedule: when (Vertex AI cron syntax)")
    parser.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--api_endpoint", default="",
                        help="retrain-schedule: Vertex AI's REST endpoint, scheme://host[:port] (default: regional)")
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                        help="job parameters (e.g. output=gs://b/x), dataflow.<gcloud flag>=..., or spec values")
    args = parser.parse_intermixed_args(argv)
    if args.bucket.startswith("gs://") or "/" in args.bucket:
        parser.error("--bucket is a bucket name, e.g. my-bucket")
    if any("=" not in setting for setting in args.settings):
        parser.error("settings are KEY=VALUE")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cloud = Cloud(args.project, args.region, args.bucket, args.tag)
    extra = dict(setting.split("=", 1) for setting in args.settings)
    if args.command == "retrain-schedule":
        return retrain_schedule(cloud, args.gpu, args.cron, extra, args.dry_run, endpoint=args.api_endpoint)
    files: dict[Path, str] = {}
    if args.command == "image":
        commands = image_commands(cloud)
    elif args.command == "flex-templates":
        commands = flex_template_commands(cloud)
    elif args.command == "dataflow-preprocess":
        commands = [preprocess_command(cloud, extra)]
    elif args.command == "dataflow-separate":
        commands = [separate_command(cloud, extra, args.dry_run)]
    elif args.command == "stage-config":
        commands = [stage_config_command(cloud, extra)]
    else:
        commands, files = vertex_commands(cloud, args.gpu, extra)
    return execute(commands, files, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
