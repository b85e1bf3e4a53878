"""Flex Template metadata and launcher: they match the Beam jobs' real parsers, and both jobs build their
whole graph for DataflowRunner (dry run: nothing is submitted, nothing leaves this machine)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from infra.flex import launcher, metadata
from tests.conftest import REPO

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
    for param in stored["parameters"]:
        assert param["label"] and param["helpText"] and isinstance(param["isOptional"], bool)
    # help texts, defaults and regexes too: the console shows them, Dataflow checks the regexes
    assert metadata.path(job).read_text() == metadata.render(job), "make flex-metadata"


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


def _worker_pool(result) -> tuple[str, int, list[str]]:
    """(machine type, harness threads, experiments) of the Dataflow job, as Beam's own request builder
    writes them into the job's environment."""
    from apache_beam.runners.dataflow.internal import apiclient

    environment = apiclient.Environment([], result.job.options, "2.77.0", f"gs://{BUCKET}/pipeline.pb",
                                        result.job.proto_pipeline).proto
    pool = environment.worker_pools[0]
    return pool.machine_type, pool.num_threads_per_worker, list(environment.experiments)


def test_preprocess_graph_builds_for_dataflow(offline_gcp):
    result = launcher.launch("preprocess", [f"--input=gs://{BUCKET}/musdb", f"--output=gs://{BUCKET}/records",
                                            "--compression=gzip", *DATAFLOW])
    labels, environments = _graph(result)
    for step in ("ListFiles", "FindTracks", "Decode", "Validate", "Resample", "CutPatches", "EncodePatches",
                 "WriteShards", "WriteDeadLetters", "WriteDatasetJson"):
        assert step in labels
    assert [env.urn for env in environments.values()] == ["beam:env:docker:v1"]
    assert IMAGE.encode() in next(iter(environments.values())).payload
    assert result.job.options.view_as(__import__("apache_beam").options.pipeline_options.StandardOptions).runner \
        == "DataflowRunner"
    # one SDK process per vCPU (Dataflow's default), one whole song each, on 8 GB per vCPU
    machine, threads, experiments = _worker_pool(result)
    assert (machine, threads) == ("n2-highmem-4", 1) and launcher.ONE_PROCESS not in experiments


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
    machine, threads, experiments = _worker_pool(result)  # one process (one model) per VM, 2 songs per vCPU
    assert (machine, threads) == ("n2-highcpu-8", 16) and launcher.ONE_PROCESS in experiments


@pytest.mark.parametrize("machine, shape", [
    ("n2-highcpu-8", (8, 8.0)), ("n2-highmem-4", (4, 32.0)), ("e2-standard-16", (16, 64.0)),
    ("n1-standard-4", (4, 15.0)), ("c3-standard-8-lssd", (8, 32.0)), ("custom-6-24576", (6, 24.0)),
    ("n2-custom-8-16384-ext", (8, 16.0)), ("e2-medium", None)])
def test_machine_shapes(machine, shape):
    assert launcher.machine_shape(machine) == shape


def test_threads_follow_the_machine_and_the_launch_wins():
    sized = launcher.worker_sizing("separate", ["--machine_type=n2-standard-4"], 3600)
    assert sized == [f"--experiments={launcher.ONE_PROCESS}", "--number_of_worker_harness_threads=8"]
    assert launcher.worker_sizing("separate", ["--worker_machine_type", "n2-standard-4",
                                               "--number_of_worker_harness_threads=3",
                                               f"--experiments=a,{launcher.ONE_PROCESS}"], 3600) == []
    # preprocess: Dataflow's process per vCPU, one song each, whatever the machine
    assert launcher.worker_sizing("preprocess", ["--machine_type=custom-16-131072"], 1800) == [
        "--number_of_worker_harness_threads=1"]
    assert launcher.worker_sizing("separate", ["--machine_type=e2-medium"], 60) == [
        f"--experiments={launcher.ONE_PROCESS}"]  # unknown shape: threads left to Dataflow


def test_preprocess_refuses_a_length_cap_its_machine_cannot_hold(offline_gcp):
    base = [f"--input=gs://{BUCKET}/musdb", f"--output=gs://{BUCKET}/records", *DATAFLOW]
    with pytest.raises(SystemExit, match=r"n2-highmem-4 \(32 GB\): 4 songs in flight at --max_seconds 3600"):
        launcher.launch("preprocess", [*base, "--max_seconds=3600"])  # whole songs: ~3 MB per second each
    assert launcher.worker_sizing("preprocess", ["--machine_type=n2-highmem-4"], 1800)  # the default fits
    assert launcher.worker_sizing("preprocess", ["--machine_type=custom-4-65536-ext"], 3600)


def test_separator_sizes_tensorflows_pools(monkeypatch):
    from model import separator

    monkeypatch.delenv(separator.THREADS_ENV, raising=False)
    cores = len(os.sched_getaffinity(0))
    assert separator.tf_threads() == (cores, min(2, cores))
    monkeypatch.setenv(separator.THREADS_ENV, "3")
    assert separator.tf_threads() == (3, min(2, cores))
    # applied by Separator.load before TensorFlow's first op, in a process of its own
    code = ("import tensorflow as tf\nfrom model.model_dir import BUNDLED_MODEL_DIR\n"
            "from model.separator import Separator\nSeparator.load(BUNDLED_MODEL_DIR)\n"
            "print(tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())")
    env = {**os.environ, separator.THREADS_ENV: "3,1", "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["3", "1"]
