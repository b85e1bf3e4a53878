"""Both jobs run the way Dataflow runs them: Beam's PortableRunner against a local job service and an
EXTERNAL worker pool, whose SDK workers are processes of their own that import the project only from the
installed wheel (started from a folder outside the checkout). Their outputs must equal the in-process
runner's, byte for byte where the job promises determinism."""
from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from beam_jobs import run_summary
from beam_jobs.preprocess_shards import DEAD_LETTER, TRACKS, read_list

VOLATILE = {"timings_s", "outputs"}  # seconds differ per run; `outputs` holds the output folder's own path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode(errors="replace")[-3000:]
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def portable(installed_wheel):
    """Start the job service and the worker pool from the installed wheel's venv; yield the Beam options."""
    job_port, pool_port = _free_port(), _free_port()
    services = [subprocess.Popen(command, cwd=installed_wheel.workdir, env=installed_wheel.env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for command in (
                    ["python", "-m", "apache_beam.runners.portability.local_job_service_main", "--port",
                     str(job_port)],
                    ["python", "-m", "apache_beam.runners.worker.worker_pool_main", "--service_port",
                     str(pool_port)])]
    try:
        for port, process in zip((job_port, pool_port), services):
            _wait_for(port, process)
        yield ["--runner", "PortableRunner", "--job_endpoint", f"localhost:{job_port}",
               "--environment_type", "EXTERNAL", "--environment_config", f"localhost:{pool_port}"]
    finally:
        for process in services:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _run(installed_wheel, *command: str, status: int = 0) -> None:
    done = installed_wheel.run(*command, timeout=600)
    assert done.returncode == status, (command, done.stdout[-2000:], done.stderr[-4000:])


def _digests(folder: Path, pattern: str) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.glob(pattern))}


def _records(folder: Path, kind: str) -> list[dict]:
    records = [{key: value for key, value in record.items() if key not in VOLATILE}
               for record in run_summary.read_records(str(folder), kind)]
    return sorted(records, key=lambda record: (record["track"], record["input"]))


def test_separate_on_the_portable_runner_equals_the_in_process_run(installed_wheel, portable):
    songs = installed_wheel.workdir / "catalogue"
    songs.mkdir()
    rng = np.random.default_rng(3)
    for n, (name, rate, channels) in enumerate((("a.wav", 44100, 2), ("b.flac", 22050, 1), ("c.wav", 16000, 2))):
        t = np.arange(int((1.0 + n / 4) * rate)) / rate
        tone = 0.3 * np.sin(2 * np.pi * (220 + 110 * n) * t)[:, None] + 0.05 * rng.standard_normal((len(t), channels))
        sf.write(songs / name, tone.astype(np.float32), rate)
    (songs / "broken.wav").write_bytes(b"RIFF and nothing else")
    # the bundled model (no --model_dir): package data, read by the workers from their own install
    # exit 1: the run completed with one input in the dead letter
    _run(installed_wheel, "atsep", "separate", "catalogue/*", "-o", "sep-direct", status=1)
    _run(installed_wheel, "atsep", "separate", "catalogue/*", "-o", "sep-portable", *portable, status=1)
    direct, ported = installed_wheel.workdir / "sep-direct", installed_wheel.workdir / "sep-portable"
    stems = _digests(direct, "*/*.wav")
    assert len(stems) == 9 and _digests(ported, "*/*.wav") == stems
    assert _records(ported, run_summary.MANIFEST) == _records(direct, run_summary.MANIFEST)
    assert [r["track"] for r in _records(ported, run_summary.MANIFEST)] == ["a", "b", "c"]
    assert _records(ported, run_summary.DEAD_LETTER) == _records(direct, run_summary.DEAD_LETTER)
    assert [r["track"] for r in _records(ported, run_summary.DEAD_LETTER)] == ["broken"]
    summary = run_summary.read_summary(str(ported))
    assert (summary["separated"], summary["failed"]) == (3, 1)
    assert all((ported / track / "track.html").is_file() for track in "abc")  # written by the workers


def test_preprocess_on_the_portable_runner_equals_the_in_process_run(installed_wheel, portable):
    _run(installed_wheel, "atsep", "generate", "--output", "musdb", "--count", "4", "--seconds", "3",
         "--test-count", "1")
    _run(installed_wheel, "atsep", "preprocess", "--input", "musdb", "--output", "rec-direct")
    _run(installed_wheel, "atsep", "preprocess", "--input", "musdb", "--output", "rec-portable", *portable)
    direct, ported = installed_wheel.workdir / "rec-direct", installed_wheel.workdir / "rec-portable"
    shards = _digests(direct, "*/*.tfrecord*")
    assert shards and _digests(ported, "*/*.tfrecord*") == shards
    dataset = [json.loads((folder / "dataset.json").read_text()) for folder in (direct, ported)]
    for entry in dataset:  # the lists' shard counts are the runner's choice; their contents are compared below
        entry.pop(TRACKS + "_files"), entry.pop(DEAD_LETTER + "_files")
    assert dataset[0] == dataset[1] and dataset[0]["splits"]["train"]["track_count"] == 3
    assert read_list(str(ported), TRACKS) == read_list(str(direct), TRACKS)
    assert len(read_list(str(direct), TRACKS)) == 4
