"""Crashes and races: a run killed with SIGKILL mid-way, then rerun, gives byte-identical outputs to an
uninterrupted run and leaves no partial files; two runs at once on one output leave only complete files."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from beam_jobs import run_summary, separate, storage
from tests.conftest import REPO
from tests.reliability.corpus import tone

SONGS, SECONDS, RATE = 6, 3.0, 22050


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("crash-songs")
    for index in range(SONGS):
        sf.write(folder / f"song {index}.wav", tone(SECONDS, RATE, 2, seed=index), RATE, subtype="FLOAT")
    return folder


def _argv(songs: Path, out: Path, model_dir: Path) -> list[str]:
    return [str(songs / "*.wav"), "-o", str(out), "--model_dir", str(model_dir), "--subtype", "PCM_16"]


def _start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}  # oneDNN as users run it
    return subprocess.Popen([sys.executable, "-m", "beam_jobs.separate", *argv], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _digests(out: Path) -> dict[str, str]:
    """sha256 of every stem and plot, by path under the output (records hold timings and paths)."""
    return {path.relative_to(out).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(out.rglob("*")) if path.suffix in (".wav", ".png")}


def _differences(out: Path, reference: Path) -> list[tuple[str, float]]:
    """Files whose bytes differ from the reference run's, with the largest sample difference."""
    mine, theirs = _digests(out), _digests(reference)
    found = []
    for name in sorted(set(mine) | set(theirs)):
        if mine.get(name) == theirs.get(name):
            continue
        if name.endswith(".wav") and name in mine and name in theirs:
            diff = np.abs(sf.read(out / name)[0] - sf.read(reference / name)[0]).max()
            found.append((name, float(diff)))
        else:
            found.append((name, float("nan")))
    return found


def _partials(out: Path) -> list[str]:
    return [path.name for path in out.rglob("*") if storage.PARTIAL in path.name]


@pytest.fixture(scope="module")
def reference(songs, model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    separate.run(_argv(songs, out, model_dir))
    return out


def test_sigkill_mid_run_then_rerun_matches_an_uninterrupted_run(songs, model_dir, reference, tmp_path,
                                                                 record_case):
    out = tmp_path / "out"
    process = _start(_argv(songs, out, model_dir))
    deadline = time.monotonic() + 120
    # kill while a later track is being written: after one track.json, once a temporary file shows
    while time.monotonic() < deadline and process.poll() is None and not (
            list(out.glob("*/track.json")) and _partials(out)):
        time.sleep(0.02)
    done_at_kill = len(list(out.glob("*/track.json")))
    os.killpg(process.pid, signal.SIGKILL)  # the whole process group: the runner's threads and ffmpeg
    process.wait()
    assert 0 < done_at_kill < SONGS, f"kill landed at {done_at_kill} of {SONGS} tracks: not mid-way"
    assert not (out / "summary.json").exists() and not list(out.glob("manifest-*"))
    for path in out.rglob("*.wav"):  # a final name is only ever a complete file
        if storage.PARTIAL not in path.name:
            assert sf.info(path).frames == int(SECONDS * RATE)  # readable, full length
    left_by_kill = len(_partials(out))

    separate.run(_argv(songs, out, model_dir))
    differences, partials = _differences(out, reference), _partials(out)
    manifest = list(run_summary.read_records(str(out)))
    dead = list(run_summary.read_records(str(out), run_summary.DEAD_LETTER))
    skipped = sum(record["status"] == "skipped" for record in manifest)
    record_case("crash", f"SIGKILL after {done_at_kill}/{SONGS} tracks, then rerun",
                "identical outputs, no partial files",
                f"{len(_digests(out)) - len(differences)}/{len(_digests(reference))} stems+plots sha256-identical; "
                f"{len(manifest)} in manifest ({skipped} skipped), {len(dead)} dead; {len(partials)} partial files "
                f"left (the kill left {left_by_kill})")
    assert differences == [] and partials == []
    assert len(manifest) == SONGS and dead == []
    assert skipped == done_at_kill


def test_two_runs_on_one_output_leave_only_complete_files(songs, model_dir, reference, tmp_path, record_case):
    out = tmp_path / "out"
    runs = [_start(_argv(songs, out, model_dir)), _start([*_argv(songs, out, model_dir), "--force"])]
    errors = [run.communicate(timeout=300)[1].decode(errors="replace") for run in runs]
    differences, partials = _differences(out, reference), _partials(out)
    manifest = list(run_summary.read_records(str(out)))
    record_case("race", "two runs at once on one output (one with --force)", "only complete files",
                f"exits {[run.returncode for run in runs]}; {len(manifest)} tracks; {len(partials)} partial files; "
                f"{len(differences)} stems/plots differ from a lone run's")
    assert [run.returncode for run in runs] == [0, 0], errors
    assert partials == [] and differences == []  # deterministic: whichever run renamed last, same bytes
    for record_file in out.glob("*/track.json"):
        record = json.loads(record_file.read_text())
        stems = [sf.read(record["outputs"][stem], dtype="float32")[0] for stem in record["stems"]]
        mix = sf.read(songs / f"{record['track']}.wav", dtype="float32")[0]
        np.testing.assert_allclose(sum(stems), mix, atol=1e-4)  # 3 stems rounded to 16 bits
    assert sorted(record["track"] for record in manifest) == sorted(f"song {i}" for i in range(SONGS))


def test_partials_of_dead_writers_are_removed_and_live_ones_kept(tmp_path, record_case):
    """What a SIGKILL leaves (a temporary file whose writer is gone) is removed by the next write of
    that name; a live writer's temporary file (another run, another thread) is never touched."""
    final = tmp_path / "track" / "vocals.wav"
    final.parent.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(gone.stdout)
    live = storage.temp_sibling(str(final))  # this process: alive
    dead = live.replace(f"-{os.getpid()}-", f"-{dead_pid}-")
    other = final.parent / ".vocals-000000-1-0123abcd.partial.wav"  # another host's: not ours to judge
    for path in (live, dead, other):
        Path(path).write_bytes(b"half")
    storage.write_bytes_atomic(str(final), b"whole")
    kept = {name: Path(path).exists() for name, path in (("live", live), ("dead", dead), ("foreign", other))}
    record_case("crash", "temporary files: a dead writer's, a live writer's, another host's",
                "dead one removed, others kept",
                f"final holds {final.read_bytes()!r}; still there: {[name for name, there in kept.items() if there]}")
    assert final.read_bytes() == b"whole"
    assert kept == {"live": True, "dead": False, "foreign": True}
