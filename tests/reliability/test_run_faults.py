"""Where a run puts its outputs, and what the world does to them mid-run: a master louder than full scale,
one track name in two folders, an output folder inside the input folder, a read-only output, a full disk
(a small tmpfs), and object storage that goes away mid-run."""
from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from beam_jobs import run_summary, separate, storage
from beam_jobs.options import EXIT_INPUTS_FAILED, EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, run_failed
from tests.reliability.corpus import tone

RATE = 22050


def _songs(folder: Path, count: int, seconds: float = 2.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        sf.write(folder / f"song {index}.wav", tone(seconds, RATE, 2, seed=index), RATE, subtype="FLOAT")
    return folder


def _records(out: str) -> tuple[list[dict], list[dict]]:
    return (list(run_summary.read_records(out)), list(run_summary.read_records(out, run_summary.DEAD_LETTER)))


def _incomplete(out: Path) -> list[str]:
    """Partial files, and stems whose length is not their record's."""
    wrong = [path.name for path in out.rglob("*") if storage.PARTIAL in path.name]
    for record_file in out.glob("*/track.json"):
        record = json.loads(record_file.read_text())
        wrong += [f"{record['track']}/{stem}" for stem in record["stems"]
                  if sf.info(record["outputs"][stem]).frames != record["samples"]]
    return wrong


def _a_track_done(proxy, prefix: str):
    """A condition: some track's record (`track.json`, written last) is in place under `prefix`."""
    return lambda: any(name.endswith("/track.json") for name in proxy.upstream_names(prefix))


@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount_tmpfs(name, size, read_only=False) -> a fresh tmpfs of `size` mounted at tmp_path/name."""
    mounted = []

    def mount(name: str, size: str, read_only: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True,
                              text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_master_louder_than_full_scale_loses_nothing_by_default(tmp_path, model_dir, caplog, record_case):
    """A float wav peaking at +12 dBFS: default stems are float wav and add back up to it; PCM_16 stems,
    asked for, clip, and the record, the page, the summary and the log say by how much."""
    loud = tmp_path / "loud.wav"
    mix = tone(1.0, 44100, 2, seed=11)
    mix *= 4.0 / np.abs(mix).max()  # +12 dBFS
    sf.write(loud, mix, 44100, subtype="FLOAT")
    whole = tmp_path / "whole"
    status = separate.main([str(loud), "-o", str(whole), "--model_dir", str(model_dir)])
    record = json.loads((whole / "loud" / "track.json").read_text())
    stems = [sf.read(whole / "loud" / f"{stem}.wav", dtype="float32")[0] for stem in record["stems"]]
    error = float(np.abs(sum(stems) - mix).max())
    record_case("loud input", "float wav at +12 dBFS, default options", "float stems that add up to it",
                f"exit {status}; {record['subtype']} stems, sum within {error:.1e} of the input; "
                f"clipping recorded: {record.get('clipped', 'none')}")
    assert status == EXIT_OK and record["subtype"] == "FLOAT" and "clipped" not in record
    assert error < 1e-5

    clipped = tmp_path / "clipped"
    with caplog.at_level("WARNING"):
        separate.run([str(loud), "-o", str(clipped), "--model_dir", str(model_dir), "--subtype", "PCM_16"])
    record = json.loads((clipped / "loud" / "track.json").read_text())
    stems = [sf.read(clipped / "loud" / f"{stem}.wav", dtype="float32")[0] for stem in record["stems"]]
    peaks = {stem: clip["peak_dbfs"] for stem, clip in record.get("clipped", {}).items()}
    record_case("loud input", "the same, --subtype PCM_16", "clipping recorded in record, page, summary, log",
                f"peaks over full scale (dBFS) {peaks}; warning: {record.get('warnings', ['none'])[0][:60]}")
    # how the untrained heads share the mix varies with their random weights; together they peak far over
    assert record["subtype"] == "PCM_16" and max(peaks.values(), default=0) > 3
    assert sum(c["samples"] for c in record["clipped"].values()) > 1000
    assert "clipped in the PCM_16 output" in record["warnings"][0]
    assert "clipped in the PCM_16 output" in (clipped / "loud" / "track.html").read_text()
    assert run_summary.read_summary(str(clipped))["warned"] == 1
    assert any("clipped" in message for message in caplog.messages)
    assert np.abs(sum(stems) - mix).max() > 1.0  # what the record warns about: the stems lost the overs


def test_one_track_name_in_two_folders(tmp_path, model_dir, record_case):
    for folder in ("live", "studio"):
        _songs(tmp_path / "songs" / folder, 1)
    out = tmp_path / "out"
    status = separate.main([str(tmp_path / "songs" / "*" / "*.wav"), "-o", str(out), "--model_dir", str(model_dir)])
    manifest, dead = _records(str(out))
    record_case("outputs", "`live/song 0.wav` and `studio/song 0.wav` in one run",
                "one separated, the other a dead letter naming both",
                f"exit {status}; separated {[Path(r['input']).parent.name for r in manifest]}; "
                f"dead letter: {[r['reason'] for r in dead]}")
    assert status == EXIT_INPUTS_FAILED
    assert [Path(record["input"]).parent.name for record in manifest] == ["live"]
    assert len(dead) == 1 and dead[0]["input"].endswith("studio/song 0.wav")
    assert "already taken by" in dead[0]["reason"] and "live/song 0.wav" in dead[0]["reason"]


def test_an_output_folder_inside_the_input_folder(tmp_path, model_dir, record_case):
    songs = _songs(tmp_path / "songs", 2)
    argv = [str(songs / "**"), "-o", str(songs / "separated"), "--model_dir", str(model_dir)]
    first = separate.main(argv)
    second = separate.main(argv)  # the first run's stems now lie under the glob
    manifest, dead = _records(str(songs / "separated"))
    record_case("outputs", "`-o songs/separated` for input `songs/**`, run twice",
                "the second run skips both songs and reads none of its own outputs",
                f"exits {first}, {second}; manifest {sorted((r['track'], r['status']) for r in manifest)}; "
                f"{len(dead)} dead letters")
    assert (first, second) == (EXIT_OK, EXIT_OK) and dead == []
    assert sorted((r["track"], r["status"]) for r in manifest) == [("song 0", "skipped"), ("song 1", "skipped")]
    assert sorted(path.name for path in (songs / "separated").iterdir() if path.is_dir()) == ["song 0", "song 1"]


def test_a_read_only_output(tmp_path, model_dir, mount_tmpfs, capsys, record_case):
    songs = _songs(tmp_path / "songs", 1)
    read_only = mount_tmpfs("read-only", "1m", read_only=True)
    status = separate.main([str(songs), "-o", str(read_only / "out"), "--model_dir", str(model_dir)])
    error = capsys.readouterr().err.strip().splitlines()
    record_case("outputs", "output on a read-only file system", "exit 2 before any work, saying why",
                f"exit {status}: {error[-1] if error else 'nothing on stderr'}")
    assert status == EXIT_USAGE
    assert "Read-only file system" in error[-1] and str(read_only / "out") in error[-1]


def test_a_full_disk_then_a_rerun_with_room(tmp_path, model_dir, mount_tmpfs, capsys, record_case):
    songs = _songs(tmp_path / "songs", 4)
    disk = mount_tmpfs("disk", "1700k")
    out = disk / "out"
    argv = [str(songs), "-o", str(out), "--model_dir", str(model_dir), "--subtype", "PCM_16"]
    status = separate.main(argv)
    manifest, dead = _records(str(out))
    incomplete = _incomplete(out)
    reasons = sorted({record["reason"] for record in dead})
    record_case("outputs", "a 1.7 MB disk for 4 songs of ~0.6 MB, written side by side",
                "each track complete or dead-lettered as out of space; no partial files",
                f"exit {status}; {len(manifest)} separated, {len(dead)} dead: {reasons}; "
                f"{len(incomplete)} partial or short files")
    assert status == EXIT_INPUTS_FAILED and incomplete == []
    assert len(dead) >= 1 and len(manifest) + len(dead) == 4
    assert all("No space left on device" in reason for reason in reasons), reasons

    subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
    status = separate.main(argv)
    rerun, dead = _records(str(out))
    statuses = sorted(record["status"] for record in rerun)
    record_case("outputs", "the same run again, with room", "resumes: earlier tracks skipped, the rest written",
                f"exit {status}; {statuses.count('skipped')} skipped, {statuses.count('ok')} separated, "
                f"{len(dead)} dead; {len(_incomplete(out))} partial or short files")
    assert status == EXIT_OK and dead == [] and _incomplete(out) == []
    assert statuses.count("skipped") == len(manifest) and len(rerun) == 4


@pytest.mark.gcs
def test_object_storage_going_away_mid_run(flaky_bucket, model_dir, tmp_path, record_case):
    """Every request refused (connections dropped) for 10 s, from the moment the first track's record is
    in place: the clients retry with backoff, and the run completes, correct."""
    bucket, proxy = flaky_bucket
    songs = _songs(tmp_path / "songs", 4)
    for path in sorted(songs.iterdir()):
        storage.write_bytes_atomic(f"{bucket}/outage/{path.name}", path.read_bytes())
    out = f"{bucket}/outage-out"
    outage = threading.Thread(target=proxy.outage_when, args=(_a_track_done(proxy, "outage-out/"), 10.0),
                              daemon=True)
    outage.start()
    started = time.monotonic()
    status = separate.main([f"{bucket}/outage/*.wav", "-o", out, "--model_dir", str(model_dir)])
    seconds = time.monotonic() - started
    outage.join(timeout=1)
    manifest, dead = _records(out)
    record_case("storage faults", "object store refusing every request for 10 s mid-run",
                "run completes, correct", f"exit {status} after {seconds:.0f} s; {len(manifest)}/4 separated, "
                f"{len(dead)} dead; {proxy.outcomes['down']} requests refused during the outage")
    assert proxy.outcomes["down"] > 0, "the outage did not fall inside the run"
    assert status == EXIT_OK and len(manifest) == 4 and dead == []


def test_a_run_that_stops_says_why_in_one_line(capsys):
    """What a runner raises holds whole tracebacks: the terminal gets the last line and how to resume."""
    error = RuntimeError("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
                         "OSError: [Errno 5] Input/output error [while running 'Separate']\n")
    assert run_failed("separate", error) == EXIT_RUN_FAILED
    said = capsys.readouterr().err.splitlines()
    assert said == ["separate: the run stopped before it completed: RuntimeError: OSError: [Errno 5] Input/output "
                    "error [while running 'Separate']",
                    "separate: what finished is kept; the same command resumes from there"]
