"""Object storage that fails a share of requests (503s, dropped connections): the jobs' storage calls
retry with backoff (Beam's GCS IO over google-cloud-storage) and the runs complete, correct."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from beam_jobs import preprocess, run_summary, separate, storage
from beam_jobs.preprocess_shards import DEAD_LETTER, TRACKS, read_list
from tests.reliability.corpus import tone

pytestmark = pytest.mark.gcs


def test_storage_calls_survive_failures(flaky_bucket, tmp_path, record_case):
    bucket, proxy = flaky_bucket
    before = dict(proxy.outcomes)
    payloads = {f"{bucket}/calls/{index}.bin": bytes([index]) * (1000 + index) for index in range(12)}
    for path, data in payloads.items():
        storage.write_bytes_atomic(path, data)
    read_back = sum(storage.read_bytes(path) == data for path, data in payloads.items())
    found = sum(storage.exists(path) for path in payloads)
    staged = storage.stage_tree(f"{bucket}/calls", str(tmp_path / "staged"))
    listed = len(list((tmp_path / "staged").iterdir()))
    failed = proxy.outcomes["503"] + proxy.outcomes["drop"] - before.get("503", 0) - before.get("drop", 0)
    record_case("storage faults", "write/read/exists/list/stage, 1 request in 4 failing", "all succeed",
                f"{read_back}/12 read back equal, {found}/12 exist, {listed}/12 staged; {failed} requests failed")
    assert read_back == found == listed == len(payloads) and staged
    assert failed >= 10


def test_separate_completes_through_failures(flaky_bucket, model_dir, tmp_path, record_case):
    bucket, proxy = flaky_bucket
    songs = {f"{bucket}/songs/song{index}.wav": tone(1.0, 22050, 2, seed=index) for index in range(2)}
    for path, waveform in songs.items():
        local = tmp_path / storage.basename(path)
        sf.write(local, waveform, 22050, subtype="FLOAT")
        storage.write_bytes_atomic(path, local.read_bytes())
    before = proxy.outcomes["503"] + proxy.outcomes["drop"]
    out = f"{bucket}/separated"
    separate.run([f"{bucket}/songs/*.wav", "-o", out, "--model_dir", str(model_dir), "--subtype", "FLOAT"])
    failed = proxy.outcomes["503"] + proxy.outcomes["drop"] - before
    manifest = sorted(run_summary.read_records(out), key=lambda record: record["track"])
    dead = list(run_summary.read_records(out, run_summary.DEAD_LETTER))
    errors = {record["track"]: float(np.abs(sum(sf.read(_local(record["outputs"][stem], tmp_path), dtype="float32")[0]
                                                 for stem in record["stems"]) - songs[record["input"]]).max())
              for record in manifest}
    record_case("storage faults", "separate gs:// -> gs://, 1 request in 4 failing", "complete, correct",
                f"{len(manifest)}/2 tracks, {len(dead)} dead; stems sum to the mix within "
                f"{max(errors.values(), default=float('nan')):.1e}; {failed} failed requests retried")
    assert [record["track"] for record in manifest] == ["song0", "song1"] and dead == []
    assert max(errors.values()) < 1e-5
    assert failed > 0


def test_preprocess_completes_through_failures(flaky_bucket, tmp_path, record_case):
    bucket, proxy = flaky_bucket
    for index in range(2):
        for stem in ("vocals", "drums"):
            local = tmp_path / f"{index}-{stem}.wav"
            sf.write(local, tone(1.5, 22050, 2, seed=index), 22050, subtype="FLOAT")
            storage.write_bytes_atomic(f"{bucket}/musdb/train/song{index}/{stem}.wav", local.read_bytes())
    before = proxy.outcomes["503"] + proxy.outcomes["drop"]
    preprocess.run(["--input", f"{bucket}/musdb", "--output", f"{bucket}/records", "--sample_rate", "8000"])
    failed = proxy.outcomes["503"] + proxy.outcomes["drop"] - before
    dataset = json.loads(storage.read_text(f"{bucket}/records/dataset.json"))
    listed = [track["name"] for track in read_list(f"{bucket}/records", TRACKS)]
    dead = read_list(f"{bucket}/records", DEAD_LETTER)
    record_case("storage faults", "preprocess gs:// -> gs://, 1 request in 4 failing", "complete, correct",
                f"{dataset['splits']['train']['track_count']}/2 tracks in dataset.json, {len(listed)} listed, "
                f"{len(dead)} dead; {failed} failed requests retried")
    assert dataset["splits"]["train"]["track_count"] == 2
    assert listed == ["song0", "song1"] and dead == []
    assert failed > 0


def _local(path: str, tmp_path) -> str:
    local = tmp_path / ("fetched-" + path.replace("/", "_"))
    local.write_bytes(storage.read_bytes(path))
    return str(local)
