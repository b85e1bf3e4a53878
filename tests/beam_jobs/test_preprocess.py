"""The preprocess job on the real DirectRunner over tiny generated songs in every layout it reads."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from beam_jobs import preprocess
from beam_jobs.preprocess_shards import DEAD_LETTER, TRACKS, check_shards, read_list, shard_count
from beam_jobs.preprocess_tracks import patch_starts, record_key
from audio.codec import mux_stem_mp4

RATE = 44100
MODEL_RATE = 8000  # set by --sample_rate over the config file's 11025; records at it (data.rate_factor 1)
STEMS = ("drums", "bass", "other", "vocals")
MUSDB18_7 = Path(__file__).parents[2].parent / "shared/data/musdb18-7"


def _stems(seconds: float, seed: int) -> dict[str, np.ndarray]:
    """Four stereo stems (a sine each, plus a little noise) and their sum as the mixture."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    stems = {name: (0.15 * np.sin(2 * np.pi * f * t)[:, None] * [1.0, 0.8]
                    + 0.01 * rng.standard_normal((len(t), 2))).astype(np.float32)
             for name, f in zip(STEMS, (55.0, 110.0, 440.0, 990.0))}
    return {"mixture": sum(stems.values()), **stems}


def _mux(path: Path, stems: dict[str, np.ndarray], streams: int = 5) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mux_stem_mp4(path, list(stems.values())[:streams], RATE)


def _folder(path: Path, stems: dict[str, np.ndarray]) -> None:
    path.mkdir(parents=True)
    for name, waveform in stems.items():
        sf.write(path / f"{name}.wav", waveform, RATE, subtype="FLOAT")


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    from model.config import Config

    folder = tmp_path_factory.mktemp("config")
    return Config().replace(data__patch_seconds=1.0, data__rate_factor=1).save(folder)


@pytest.fixture(scope="module")
def mp4_root(tmp_path_factory) -> Path:
    """MUSDB18 layout: 3 train songs, one musdb validation song, 1 test song, 3 bad files."""
    root = tmp_path_factory.mktemp("musdb")
    for index, name in enumerate(("A - One", "B - Two", "C - Three", "Leaf - Summerghost")):
        _mux(root / "train" / f"{name}.stem.mp4", _stems(2.2, index))
    _mux(root / "test" / "D - Four.stem.mp4", _stems(2.2, 9))
    _mux(root / "train" / "Bad - Four Streams.stem.mp4", _stems(1.0, 5), streams=4)
    (root / "train" / "Bad - Empty.stem.mp4").write_bytes(b"")
    _mux(root / "train" / "Bad - Silent.stem.mp4", {k: 0 * v for k, v in _stems(1.0, 6).items()})
    return root


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory) -> Path:
    """MUSDB18-HQ folders, a plain folder with two stems and no mixture, and a short song."""
    root = tmp_path_factory.mktemp("hq")
    _folder(root / "train" / "E - Five", _stems(2.2, 10))
    _folder(root / "test" / "F - Six", _stems(2.2, 11))
    uneven = _stems(2.2, 12)
    uneven["bass"] = uneven["bass"][:-RATE // 2]
    _folder(root / "train" / "G - Uneven", uneven)
    _folder(root / "H - Plain", {k: v for k, v in _stems(2.2, 13).items() if k in ("vocals", "drums")})
    _folder(root / "I - Short", _stems(0.5, 14))
    return root


def _run(root: Path | str, out: Path | str, config_file: Path, *extra: str) -> dict[str, int]:
    argv = ["--input", str(root), "--output", str(out), "--config", str(config_file),
            "--sample_rate", str(MODEL_RATE), "--shard_mb", "0.2", *extra]
    return preprocess.counters(preprocess.run(argv))


@pytest.fixture(scope="module")
def mp4_run(mp4_root, config_file, tmp_path_factory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("records")
    return out, _run(mp4_root, out, config_file)


@pytest.fixture(scope="module")
def folder_run(folder_root, config_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("records-gz")
    _run(folder_root, out, config_file, "--compression", "gzip")
    return out


def _dataset(out: Path) -> dict:
    return json.loads((out / "dataset.json").read_text())


def _dead(out: Path) -> dict[str, dict]:
    return {letter["track"]: letter for letter in read_list(str(out), DEAD_LETTER)}


def _tracks(out: Path | str, split: str) -> list[dict]:
    return [track for track in read_list(str(out), TRACKS) if track["split"] == split]


def _records(out: Path, split: str) -> list[dict]:
    import tensorflow as tf

    from model.records import decode_patch

    dataset = _dataset(out)
    files = [str(out / name) for name in dataset["splits"][split]["shards"]]
    compression = "GZIP" if dataset["compression"] == "gzip" else ""
    return [decode_patch(record)
            for record in tf.data.TFRecordDataset(files, compression_type=compression).as_numpy_iterator()]


def _count_records(path: Path) -> int:
    import tensorflow as tf

    return sum(1 for _ in tf.data.TFRecordDataset(str(path)))


def _hashes(out: Path) -> dict[str, str]:
    return {str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(out.glob("*/*.tfrecord*"))}


def test_stem_mp4_songs_become_patches_per_split(mp4_run):
    out, counters = mp4_run
    dataset = _dataset(out)
    splits = dataset["splits"]
    assert {split: e["track_count"] for split, e in splits.items()} == {"train": 3, "valid": 1, "test": 1}
    assert [t["name"] for t in _tracks(out, "valid")] == ["Leaf - Summerghost"]
    # 2.2 s in 1 s patches: 0 s, 1 s and a last one ending with the song (1.2 s)
    assert {split: e["patch_count"] for split, e in splits.items()} == {"train": 9, "valid": 3, "test": 3}
    assert counters == {"tracks_ok": 5, "tracks_failed": 3, "patches": 15}
    assert dataset["sample_rate"] == MODEL_RATE and dataset["patch_samples"] == MODEL_RATE
    assert _tracks(out, "train")[0]["missing_stems"] == []
    # 9 patches of ~160 kB in 0.2 MiB shards: 7 shards, dealt by the hash of each patch's key
    assert len(splits["train"]["shards"]) == 7
    per_shard = [_count_records(out / name) for name in splits["train"]["shards"]]
    assert sum(per_shard) == 9  # a shard may be empty in so small a split; files are written all the same
    assert all((out / name).is_file() for entry in splits.values() for name in entry["shards"])

    records = _records(out, "train")
    assert len(records) == 9
    assert {(r["track_id"], r["offset"]) for r in records if r["track_id"] == "A - One"} == {
        ("A - One", 0), ("A - One", MODEL_RATE), ("A - One", round(2.2 * MODEL_RATE) - MODEL_RATE)}
    for record in records:
        assert record["split"] == "train" and record["sample_rate"] == MODEL_RATE
        assert list(record["stems"]) == ["mixture", *STEMS]
        assert all(w.shape == (MODEL_RATE, 2) for w in record["stems"].values())
        assert np.abs(record["stems"]["mixture"]).max() > 0.1


def test_stem_mp4_mixture_survives_resampling(mp4_run):
    from model import dsp

    out, _ = mp4_run
    song = dsp.resample(_stems(2.2, 9)["mixture"], RATE, MODEL_RATE)
    record = next(r for r in _records(out, "test") if r["offset"] == MODEL_RATE)
    error = record["stems"]["mixture"] - song[MODEL_RATE: 2 * MODEL_RATE]
    assert np.sqrt(np.mean(error ** 2)) < 0.01  # AAC at 256 kb/s and float16, not a shifted copy


def test_bad_songs_go_to_dead_letters(mp4_run):
    out, _ = mp4_run
    dead = _dead(out)
    assert set(dead) == {"Bad - Four Streams", "Bad - Empty", "Bad - Silent"}
    assert "found 4" in dead["Bad - Four Streams"]["reason"]
    assert "DecodeError" in dead["Bad - Empty"]["reason"]
    assert "silent" in dead["Bad - Silent"]["reason"]
    assert dead["Bad - Empty"]["paths"][0].endswith("train/Bad - Empty.stem.mp4")
    assert _dataset(out)["dead_letters"] == 3


def test_progress_bar_counts_every_track_good_or_bad(mp4_root, config_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ATSEP_PROGRESS", "1")  # draw although stderr is captured, not a terminal
    _run(mp4_root, tmp_path / "records", config_file)
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    last = [line for line in bar if line.startswith("preprocess")][-1]
    assert "8/8" in last  # 5 songs and 3 dead letters
    assert "0.2 min of audio" in last  # the 5 songs of 2.2 s


def test_shards_are_byte_identical_across_runs_and_workers(mp4_root, mp4_run, config_file, tmp_path):
    out, counters = mp4_run
    # the first run used the job's default, in_memory
    again = _run(mp4_root, tmp_path, config_file, "--direct_running_mode", "multi_threading",
                 "--direct_num_workers", "2")
    assert again == counters
    assert _hashes(tmp_path) == _hashes(out) and len(_hashes(out)) > 3
    assert _dataset(tmp_path)["splits"] == _dataset(out)["splits"]
    assert read_list(str(tmp_path), TRACKS) == read_list(str(out), TRACKS)


def test_hq_and_plain_folders_with_gzip(folder_run):
    splits = _dataset(folder_run)["splits"]
    train = {t["name"]: t for t in _tracks(folder_run, "train")}
    assert set(train) == {"E - Five", "H - Plain", "I - Short"}
    assert [t["name"] for t in _tracks(folder_run, "test")] == ["F - Six"]
    assert train["E - Five"]["missing_stems"] == []
    assert train["H - Plain"]["stems"] == ["mixture", "drums", "vocals"]
    assert train["H - Plain"]["missing_stems"] == ["bass", "other"]
    assert train["H - Plain"]["mixture_from_stems"] is True
    assert "unequal lengths" in _dead(folder_run)["G - Uneven"]["reason"]

    shards = [folder_run / name for entry in splits.values() for name in entry["shards"]]
    assert shards and all(path.name.endswith(".tfrecord.gz") for path in shards)
    assert all(path.read_bytes()[:2] == b"\x1f\x8b" for path in shards)
    assert sum(len(gzip.open(path).read()) for path in shards) > 1000
    records = _records(folder_run, "train")
    assert len(records) == splits["train"]["patch_count"] == 3 + 3 + 1
    plain = next(r for r in records if r["track_id"] == "H - Plain")
    assert list(plain["stems"]) == ["mixture", "drums", "vocals"]


def test_a_song_shorter_than_a_patch_is_zero_padded(folder_run):
    records = [r for r in _records(folder_run, "train") if r["track_id"] == "I - Short"]
    assert len(records) == 1 and records[0]["offset"] == 0
    mixture = records[0]["stems"]["mixture"]
    assert mixture.shape == (MODEL_RATE, 2)
    assert np.abs(mixture[: MODEL_RATE // 2 - 100]).max() > 0.1
    assert not mixture[MODEL_RATE // 2 + 100:].any()


def test_patch_starts_and_shard_helpers():
    assert patch_starts(250, 100) == [0, 100, 150]
    assert patch_starts(200, 100) == [0, 100]
    assert patch_starts(60, 100) == [0]
    assert patch_starts(100, 100) == [0]
    assert patch_starts(101, 100) == [0, 1]
    assert record_key("A - One", 8000) == record_key("A - One", 8000) != record_key("A - One", 0)
    # sha256 of '["A - One", 0]': the same on every machine, unlike Python's hash()
    assert record_key("A - One", 0).startswith(hashlib.sha256(b'["A - One", 0]').hexdigest()[:12])
    assert shard_count(10 * 2**20, records=100, shard_mb=4) == 3
    assert shard_count(10 * 2**20, records=2, shard_mb=1) == 2  # never more shards than records
    assert shard_count(100, records=1, shard_mb=64) == 1


def test_check_shards_refuses_a_shard_in_parts_or_short_of_patches():
    shards = [{"split": "train", "file": "train/train-00000-of-00002.tfrecord", "records": 2},
              {"split": "train", "file": "train/train-00001-of-00002.tfrecord", "records": 1}]
    check_shards(shards, {"train": {"patch_count": 3}})
    with pytest.raises(RuntimeError, match="train: the shards hold 3 records for 4 patches cut"):
        check_shards(shards, {"train": {"patch_count": 4}})
    with pytest.raises(RuntimeError, match="valid: the shards hold 0 records for 1 patches cut"):
        check_shards(shards, {"train": {"patch_count": 3}, "valid": {"patch_count": 1}})
    with pytest.raises(RuntimeError, match="train-00001-of-00002.tfrecord in more than one part"):
        check_shards([*shards, {**shards[1], "records": 0}], {"train": {"patch_count": 3}})


def test_help_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys\nfrom beam_jobs import preprocess\ntry:\n    preprocess.parse_args(['--help'])\n"
            "except SystemExit:\n    pass\nprint('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).parents[2], env={**os.environ, "PYTHONPATH": "."})
    assert result.stdout.strip().endswith("False")


@pytest.mark.shared_data
def test_musdb18_7_previews_keep_every_patch(tmp_path):
    """The job's default local mode keeps every record of 5 MB; multi_threading lost 2 and 13 of 188 here."""
    started = time.monotonic()
    counters = preprocess.counters(preprocess.run(["--input", str(MUSDB18_7), "--output", str(tmp_path)]))
    seconds = time.monotonic() - started
    print(f"musdb18-7: 94 songs preprocessed in {seconds:.0f} s")
    splits = _dataset(tmp_path)["splits"]
    assert (splits["train"]["track_count"], splits["valid"]["track_count"]) == (80, 14)
    assert counters["tracks_ok"] == 94 and counters.get("tracks_failed", 0) == 0
    assert read_list(str(tmp_path), DEAD_LETTER) == []
    assert all(6.5 < t["duration_s"] < 7.5 for t in _tracks(tmp_path, "train"))
    for split in ("train", "valid"):
        in_shards = sum(_count_records(tmp_path / name) for name in splits[split]["shards"])
        assert in_shards == splits[split]["patch_count"] == 2 * splits[split]["track_count"]


@pytest.mark.gcs
def test_object_storage_input_and_output(gcs_bucket, mp4_root, folder_root, config_file, tmp_path):
    from beam_jobs import storage

    uploads = [mp4_root / "train" / "A - One.stem.mp4", mp4_root / "train" / "Bad - Empty.stem.mp4",
               *(folder_root / "test" / "F - Six").iterdir()]
    for local in uploads:
        remote = local.relative_to(mp4_root if local.is_relative_to(mp4_root) else folder_root).as_posix()
        storage.write_bytes_atomic(f"{gcs_bucket}/songs/{remote}", local.read_bytes())
    out = f"{gcs_bucket}/records"
    counters = _run(f"{gcs_bucket}/songs", out, config_file)
    assert counters == {"tracks_ok": 2, "tracks_failed": 1, "patches": 6}
    dataset = json.loads(storage.read_text(f"{out}/dataset.json"))
    assert {split: entry["track_count"] for split, entry in dataset["splits"].items()} == {
        "train": 1, "valid": 0, "test": 1}
    assert _tracks(out, "test")[0]["source"] == f"{gcs_bucket}/songs/test/F - Six"
    dead = read_list(out, DEAD_LETTER)
    assert [(d["track"], d["paths"]) for d in dead] == [
        ("Bad - Empty", [f"{gcs_bucket}/songs/train/Bad - Empty.stem.mp4"])]
    for split in ("train", "test"):
        for name in dataset["splits"][split]["shards"]:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(storage.read_bytes(f"{out}/{name}"))
    (tmp_path / "dataset.json").write_text(json.dumps(dataset))
    assert len(_records(tmp_path, "train")) == len(_records(tmp_path, "test")) == 3
