"""Flex Template metadata and launcher: they match the Beam jobs' real parsers, and both jobs build their
whole graph for DataflowRunner (dry run: nothing is submitted, nothing leaves this machine)."""
from __future__ import annotations

import json
import re

import pytest

from infra.flex import launcher, metadata

PROJECT, REGION, BUCKET = "atsep-project", "europe-west1", "atsep-bucket"
IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/atsep/atsep:test"
DATAFLOW = ["--runner=DataflowRunner", f"--project={PROJECT}", f"--region={REGION}",
            f"--temp_location=gs://{BUCKET}/tmp", f"--sdk_container_image={IMAGE}", "--dry_run=true"]


@pytest.mark.parametrize("job", sorted(launcher.JOBS))
def test_metadata_names_every_option_of_the_job(job):
    stored = json.loads(metadata.path(job).read_text())
    actions = launcher.job_actions(launcher.job_parser(job))
    names = [param["name"] for param in stored["parameters"]]
    assert names == [launcher.parameter_name(action) for action in actions], (
        f"{metadata.path(job).name} is out of date: python -m infra.flex.metadata --write")
    fresh = {param["name"]: param for param in metadata.metadata(job)["parameters"]}
    for param in stored["parameters"]:
        assert {key: param[key] for key in ("isOptional", "regexes")} == \
               {key: fresh[param["name"]][key] for key in ("isOptional", "regexes")}
        assert param["label"] and param["helpText"] and isinstance(param["isOptional"], bool)


@pytest.mark.parametrize("job", sorted(launcher.JOBS))
def test_every_parameter_is_validated(job):
    for action in launcher.job_actions(launcher.job_parser(job)):
        patterns = [re.compile(pattern) for pattern in metadata.parameter(action)["regexes"]]
        assert patterns, launcher.parameter_name(action)
        for choice in action.choices or ():
            assert any(pattern.match(str(choice)) for pattern in patterns)
        if action.choices:
            assert not any(pattern.match("not-a-choice") for pattern in patterns)
        if action.type in (int, float):
            assert not any(pattern.match("-1; rm") for pattern in patterns)
    output = metadata.regexes(next(a for a in launcher.job_actions(launcher.job_parser(job))
                                   if launcher.parameter_name(a) == "output"))
    assert re.match(output[0], f"gs://{BUCKET}/out") and not re.match(output[0], "/tmp/out")


def test_template_parameters_become_the_jobs_command_line():
    parser = launcher.job_parser("separate")
    argv = ["--inputs=gs://b/a/*.mp3, gs://b/c.wav", "--output=gs://b/out", "--force=true", "--format=flac",
            "--runner=DataflowRunner"]
    assert launcher.translate(argv, parser) == [
        "gs://b/a/*.mp3", "gs://b/c.wav", "--output=gs://b/out", "--force", "--format=flac",
        "--runner=DataflowRunner"]
    assert "--force" not in launcher.translate(["--output=gs://b/o", "--force=false"], parser)
    with pytest.raises(SystemExit):
        launcher.translate(["--force=yes"], parser)


def _graph(result) -> tuple[set[str], dict]:
    proto = result.job.proto_pipeline
    labels = {transform.unique_name for transform in proto.components.transforms.values()}
    return labels, dict(proto.components.environments)


def test_preprocess_graph_builds_for_dataflow(offline_gcp):
    result = launcher.launch("preprocess", [f"--input=gs://{BUCKET}/musdb", f"--output=gs://{BUCKET}/records",
                                            "--compression=gzip", *DATAFLOW])
    labels, environments = _graph(result)
    for step in ("MatchFiles", "FindTracks", "Decode", "Validate", "Resample", "CutPatches", "EncodePatches",
                 "WriteShards", "CombineStats", "WriteDeadLetters", "WriteDatasetJson"):
        assert step in labels
    assert [env.urn for env in environments.values()] == ["beam:env:docker:v1"]
    assert IMAGE.encode() in next(iter(environments.values())).payload
    assert result.job.options.view_as(__import__("apache_beam").options.pipeline_options.StandardOptions).runner \
        == "DataflowRunner"


def test_separate_graph_builds_for_dataflow(offline_gcp, tmp_path, tiny_config, monkeypatch):
    (tmp_path / "model").mkdir()
    tiny_config.save(tmp_path / "model")  # the job reads the model's config.json while building the graph
    (tmp_path / "model" / "saved_model").mkdir()  # the launcher checks the folder's layout, not the graph
    (tmp_path / "model" / "saved_model" / "saved_model.pb").write_bytes(b"")
    monkeypatch.setenv(launcher.WORKER_IMAGE_ENV, IMAGE)
    dataflow = [arg for arg in DATAFLOW if not arg.startswith("--sdk_container_image")]
    result = launcher.launch("separate", [f"--inputs=gs://{BUCKET}/songs/*.mp3,gs://{BUCKET}/more/*.wav",
                                          f"--output=gs://{BUCKET}/stems", f"--model_dir={tmp_path / 'model'}",
                                          "--force=true", *dataflow])
    labels, environments = _graph(result)
    for step in ("ListPatterns", "ExpandInputs", "GroupByTrack", "Reshuffle", "Separate", "WriteManifest",
                 "WriteDeadLetter"):
        assert step in labels
    assert IMAGE.encode() in next(iter(environments.values())).payload  # taken from the image's env
