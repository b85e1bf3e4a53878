"""The catalogue separation job on the real DirectRunner with a tiny untrained SavedModel."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from apache_beam.metrics.metric import MetricsFilter

from beam_jobs import outputs, plots, progress, run_summary, separate, separate_inputs, storage
from beam_jobs.options import EXIT_INPUTS_FAILED, EXIT_OK, EXIT_USAGE
from audio.codec import decode, mux_stem_mp4

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GOOD = {"stereo": (44100, 2), "mono": (22050, 1), "lossy": (44100, 2), "multi": (44100, 2)}
BAD = ("broken.wav", "empty.wav")


def _signal(seconds: float, rate: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)[:, None]
    return (tone + 0.05 * rng.standard_normal((len(t), channels))).astype(np.float32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_config) -> Path:
    from model.export import export_model
    from model.unet import build_unet

    return export_model(build_unet(tiny_config), tiny_config, tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("songs")
    sf.write(folder / "stereo.wav", _signal(1.5, 44100, 2, 0), 44100, subtype="PCM_16")
    sf.write(folder / "mono.flac", _signal(1.2, 22050, 1, 1), 22050)
    sf.write(folder / "lossy.mp3", _signal(1.0, 44100, 2, 2), 44100)
    mux_stem_mp4(folder / "multi.stem.mp4", [_signal(1.0, 44100, 2, seed) for seed in range(3, 6)], 44100)
    (folder / "broken.wav").write_bytes(np.random.default_rng(7).bytes(4000))
    (folder / "empty.wav").write_bytes(b"")
    (folder / "upload").mkdir()
    (folder / "upload" / "stereo.wav").write_bytes(b"never read: its track name is taken")
    return folder


def _argv(inputs: Path, out: Path, model_dir: Path, *extra: str) -> list[str]:
    listing = inputs.parent / f"{inputs.name}-list.txt"
    listing.write_text(f"# a comment\n{inputs / 'upload' / 'stereo.wav'}\n{inputs / 'missing.wav'}\n")
    return [str(inputs / "*"), "--input_list", str(listing), "-o", str(out), "--model_dir", str(model_dir),
            *extra]


def _records(out: Path | str, kind: str = run_summary.MANIFEST) -> list[dict]:
    """A finished run's manifest (or dead letter) from its shards, sorted by track and input."""
    return sorted(run_summary.read_records(str(out), kind), key=lambda r: (r["track"], r["input"]))


def _counter(result, name: str) -> int:
    counters = result.metrics().query(MetricsFilter().with_name(name))["counters"]
    return sum(counter.committed for counter in counters)


@pytest.fixture(scope="module")
def first_run(inputs, model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    result = separate.run(_argv(inputs, out, model_dir))
    return out, result


def test_stems_follow_the_input_and_add_up_to_the_mix(first_run, inputs):
    out, _ = first_run
    for track, (rate, channels) in GOOD.items():
        source = next(inputs.glob(f"{track}.*"))
        mix, mix_rate = decode(source)
        assert mix_rate == rate and mix.shape[1] == channels
        stems = {}
        for stem in ("vocals", "drums", "residual"):
            info = sf.info(out / track / f"{stem}.wav")
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (
                rate, channels, mix.shape[0], "PCM_16"), (track, stem)
            stems[stem] = sf.read(out / track / f"{stem}.wav", dtype="float32", always_2d=True)[0]
        # three stems, each rounded to 16 bits (half a step is 1.5e-5)
        np.testing.assert_allclose(sum(stems.values()), mix, atol=1e-4)
        assert np.abs(stems["vocals"]).max() > 1e-3  # an untrained mask still passes some signal


def test_plots_are_png_images(first_run):
    out, _ = first_run
    for track in GOOD:
        assert (out / track / "plot.png").read_bytes().startswith(PNG_MAGIC)


def test_manifest_has_one_line_per_good_track(first_run, model_dir):
    out, _ = first_run
    manifest = _records(out)
    assert [record["track"] for record in manifest] == sorted(GOOD)
    version = (model_dir / "VERSION").read_text().strip()
    for record in manifest:
        assert record["status"] == "ok" and record["model_version"] == version
        assert (record["sample_rate"], record["channels"]) == GOOD[record["track"]]
        assert record["duration_s"] == pytest.approx(record["samples"] / record["sample_rate"], abs=1e-3)
        assert set(record["outputs"]) == {"vocals", "drums", "residual", "plot", "track"}
        assert all(seconds >= 0 for seconds in record["timings_s"].values()), record["timings_s"]
        assert all(Path(path).is_file() for path in record["outputs"].values())
        assert json.loads((out / record["track"] / "track.json").read_text())["status"] == "ok"
    assert next(r for r in manifest if r["track"] == "multi")["input"].endswith("multi.stem.mp4")


def test_dead_letter_names_each_failure_and_why(first_run, inputs):
    out, result = first_run
    failures = {Path(record["input"]).relative_to(inputs).as_posix(): record
                for record in _records(out, run_summary.DEAD_LETTER)}
    assert set(failures) == {"broken.wav", "empty.wav", "missing.wav", "upload/stereo.wav"}
    assert failures["empty.wav"]["reason"] == "DecodeError: empty file (0 bytes)"
    assert failures["broken.wav"]["stage"] == "decode"
    assert "not a readable media file" in failures["broken.wav"]["reason"]
    assert failures["missing.wav"]["reason"] == "no file matches this path or pattern"
    assert "already taken" in failures["upload/stereo.wav"]["reason"]
    assert not (out / "broken").exists() and not (out / "empty").exists()
    assert _counter(result, "tracks_failed") == 4
    assert _counter(result, "tracks_ok") == len(GOOD)
    assert _counter(result, "audio_seconds") >= 4


def test_no_temporary_files_are_left(first_run):
    out, _ = first_run
    leftovers = [path for path in out.rglob("*") if path.name.startswith(".") or storage.PARTIAL in path.name]
    assert leftovers == []
    summary = run_summary.read_summary(str(out))
    assert sorted(path.name for path in out.iterdir() if path.is_file()) == sorted(
        ["index.html", "summary.json", *summary["manifest_shards"], *summary["dead_letter_shards"]])


def test_rerun_skips_done_tracks_and_force_redoes_them(first_run, inputs, model_dir):
    out, _ = first_run
    before = {path: path.stat().st_ino for path in out.rglob("*.wav")}
    stale = out / "manifest-00007-of-00009.jsonl"  # a shard of an earlier run with another shard count
    stale.write_text(json.dumps({"track": "gone"}) + "\n")
    result = separate.run(_argv(inputs, out, model_dir))
    assert not stale.exists()
    assert {r["status"] for r in _records(out)} == {"skipped"}
    assert {path: path.stat().st_ino for path in out.rglob("*.wav")} == before
    assert _counter(result, "tracks_skipped") == len(GOOD)
    assert len(_records(out, run_summary.DEAD_LETTER)) == 4

    separate.run(_argv(inputs, out, model_dir, "--force", "--subtype", "FLOAT"))
    assert {r["status"] for r in _records(out)} == {"ok"}
    assert all(path.stat().st_ino != inode for path, inode in before.items())
    assert sf.info(out / "stereo" / "vocals.wav").subtype == "FLOAT"


def test_track_names_drop_extension_and_stem_suffix():
    assert separate_inputs.track_name("gs://bucket/a/Song One.stem.mp4") == "Song One"
    assert separate_inputs.track_name("/music/b.side.flac") == "b.side"
    assert separate_inputs.track_name("c.wav") == "c"


def test_help_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys; from beam_jobs import separate\n"
            "try: separate.parse_args(['--help'])\nexcept SystemExit: pass\n"
            "assert 'tensorflow' not in sys.modules and 'matplotlib' not in sys.modules")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)


def test_failed_atomic_write_leaves_nothing(tmp_path):
    target = tmp_path / "x.wav"
    with pytest.raises(RuntimeError), storage.atomic_output(str(target)) as local:
        Path(local).write_bytes(b"half")
        raise RuntimeError("writer died")
    assert list(tmp_path.iterdir()) == []
    nested = tmp_path / "track" / "stems" / "x.wav"  # folders made for a write that fails go too
    with pytest.raises(RuntimeError), storage.atomic_output(str(nested)) as local:
        Path(local).write_bytes(b"half")
        raise RuntimeError("writer died")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()  # a folder that was there before stays
    with pytest.raises(RuntimeError), storage.atomic_output(str(tmp_path / "kept" / "x.wav")):
        raise RuntimeError("writer died")
    assert [path.name for path in tmp_path.iterdir()] == ["kept"]


def test_plot_of_silence_renders():
    silence = np.zeros((2048, 1), dtype=np.float32)
    assert plots.render_track(silence, {"vocals": silence}, 8000, "quiet").startswith(PNG_MAGIC)


def test_plot_titles_draw_track_names_in_every_script():
    """Catalogues hold Chinese, Japanese and Korean track names; DejaVu Sans alone has none of their glyphs,
    and matplotlib warns for each glyph it draws as an empty box."""
    import warnings

    mix = np.random.default_rng(0).standard_normal((8000, 2)).astype(np.float32) * 0.1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plots.render_track(mix, {"vocals": mix}, 8000, "周杰倫 – 雨の歌 – 비가 내리면 – Ünïcødé – Привет")
    missing = [str(warning.message) for warning in caught if "missing from font" in str(warning.message)]
    assert not missing, f"{missing[:2]}: install {plots.CJK_FONT_PACKAGE} (`make setup` does)"


def test_a_plot_drawn_after_another_track_is_the_plot_drawn_fresh():
    """Each thread redraws one figure track after track: nothing of the last track (its envelopes, limits,
    colours, row names, title) may show in the next one's pixels."""
    import io
    import threading

    from PIL import Image

    rng = np.random.default_rng(5)
    loud = {name: rng.uniform(-0.9, 0.9, (44100 * 30, 2)).astype(np.float32) for name in ("vocals", "drums", "rest")}
    quiet = {name: 0.1 * np.sin(np.arange(22050 * 7)[:, None] * 0.01 * (k + 1)) * np.ones(2)
             for k, name in enumerate(("voice", "beat", "rest"))}

    def pixels(png: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def in_new_thread(tracks: list) -> list[bytes]:  # a thread of its own: a figure of its own
        drawn = []
        worker = threading.Thread(target=lambda: drawn.extend(plots.render_track(mix, stems, rate, title)
                                                              for mix, stems, rate, title in tracks))
        worker.start()
        worker.join()
        return drawn

    first = (loud["vocals"] + loud["drums"], loud, 44100, "loud")
    second = (quiet["voice"], quiet, 22050, "quiet")
    fresh = in_new_thread([second])[0]
    after = in_new_thread([first, second])[1]
    assert fresh.startswith(PNG_MAGIC)
    np.testing.assert_array_equal(pixels(after), pixels(fresh))
    assert not np.array_equal(pixels(in_new_thread([first])[0]), pixels(fresh))


def _upload(local: Path, remote: str) -> None:
    storage.write_bytes_atomic(remote, local.read_bytes())


@pytest.mark.gcs
def test_object_storage_inputs_model_and_outputs(gcs_bucket, inputs, model_dir):
    from apache_beam.io.filesystems import FileSystems

    for name in ("stereo.wav", "broken.wav"):
        _upload(inputs / name, f"{gcs_bucket}/songs/{name}")
    for path in model_dir.rglob("*"):
        if path.is_file():
            _upload(path, f"{gcs_bucket}/model/{path.relative_to(model_dir).as_posix()}")
    out = f"{gcs_bucket}/out"
    separate.run([f"{gcs_bucket}/songs/*.wav", "-o", out, "--model_dir", f"{gcs_bucket}/model"])

    names = sorted(m.path[len(out) + 1:] for m in FileSystems.match([out + "/**"])[0].metadata_list)
    summary = run_summary.read_summary(out)
    assert names == sorted(["index.html", "stereo/drums.wav", "stereo/plot.png", "stereo/residual.wav",
                            "stereo/track.html", "stereo/track.json", "stereo/vocals.wav", "summary.json",
                            *summary["manifest_shards"], *summary["dead_letter_shards"]])
    manifest = _records(out)
    assert [(r["track"], r["status"], r["outputs"]["vocals"]) for r in manifest] == [
        ("stereo", "ok", f"{out}/stereo/vocals.wav")]
    assert [r["input"] for r in _records(out, run_summary.DEAD_LETTER)] == [f"{gcs_bucket}/songs/broken.wav"]
    with storage.staged_input(f"{out}/stereo/vocals.wav") as local:
        assert sf.info(local).frames == decode(inputs / "stereo.wav")[0].shape[0]


def test_formats_templates_collisions_and_the_report(tmp_path, inputs, model_dir, capsys):
    """mp3 at a chosen bitrate, named by a template; two tracks whose names differ only in case."""
    songs = tmp_path / "songs"
    (songs / "a").mkdir(parents=True)
    (songs / "b").mkdir()
    sf.write(songs / "a" / "Song.wav", _signal(1.0, 32000, 2, 8), 32000)
    sf.write(songs / "b" / "song.wav", _signal(1.0, 32000, 2, 9), 32000)
    out = tmp_path / "out"
    argv = [str(inputs / "mono.flac"), str(songs / "*" / "*.wav"), "-o", str(out), "--model_dir", str(model_dir),
            "--format", "mp3", "--bitrate", "96k", "--filename", "{stem}/{track}.{ext}"]
    assert separate.main(argv) == EXIT_INPUTS_FAILED  # stems written, one input in the dead letter
    manifest = _records(out)
    assert [record["track"] for record in manifest] == ["Song", "mono"]
    assert (manifest[1]["format"], manifest[1]["bitrate"]) == ("mp3", "96k")
    for stem in ("vocals", "drums", "residual"):
        decoded, rate = decode(out / stem / "mono.mp3")
        assert rate == 22050 and decoded.shape[1] == 1 and abs(decoded.shape[0] - 26460) < 3000
    assert (out / "plot" / "mono.png").read_bytes().startswith(PNG_MAGIC)
    assert json.loads((out / "track" / "mono.json").read_text())["status"] == "ok"
    [failure] = _records(out, run_summary.DEAD_LETTER)
    assert failure["track"] == "song" and "already taken by track 'Song'" in failure["reason"]
    printed = capsys.readouterr().out
    assert f"{out}/vocals/mono.mp3" in printed and f"{out}/plot/mono.png" in printed
    assert "failed: " in printed and printed.strip().splitlines()[-1].startswith("separate: 2 separated")


@pytest.mark.parametrize("extra, message", [
    (["--filename", "../{track}/{stem}.{ext}"], "would not stay under the output prefix"),
    (["--filename", "/{track}/{stem}.{ext}"], "would not stay under the output prefix"),
    (["--filename", "{stem}.{ext}"], "must use each of"),
    (["--filename", "{track}/{stem}.{ext}{bpm}"], "may only use"),
    (["--format", "flac", "--subtype", "FLOAT"], "flac takes subtypes"),
    (["--format", "mp3", "--bitrate", "loud"], "bitrate must look like"),
])
def test_bad_output_options_are_refused_before_anything_runs(capsys, extra, message):
    with pytest.raises(SystemExit):
        separate.parse_args(["x.wav", "-o", "out", *extra])
    assert message in capsys.readouterr().err


def test_track_names_cannot_leave_the_output_prefix():
    settings = outputs.OutputSettings("/out")
    assert outputs.track_files("a b", ("vocals",), settings)["vocals"] == "a b/vocals.wav"
    for track in ("..", ".", "", "a\\b", "x\n"):
        with pytest.raises(outputs.UnsafePath):
            outputs.track_files(track, ("vocals",), settings)


def test_progress_bar_counts_tracks_and_audio(capsys, monkeypatch):
    monkeypatch.setenv("ATSEP_PROGRESS", "1")  # draw although stderr is captured, not a terminal
    progress.advance(None, 3.0)  # no bar started: nothing happens
    progress.start("run", total=2, desc="separate")
    progress.advance("run", 90.0)
    progress.advance("run", 30.0)
    bar = progress._bars["run"]
    assert (bar.n, bar.total, bar.audio_seconds) == (2, 2, 120.0)
    progress.stop("run")
    assert "2/2" in capsys.readouterr().err and "run" not in progress._bars


def test_plot_summaries_are_bounded_and_do_not_depend_on_blocks():
    waveform = np.random.default_rng(3).uniform(-0.5, 0.5, (2_000_003, 2)).astype(np.float32)
    whole, blocked = plots.Summary(44100), plots.Summary(44100)
    whole.add(waveform)
    for start in range(0, len(waveform), 65536):
        blocked.add(waveform[start:start + 65536])
    for summary in (whole, blocked):
        times, low, high = summary.envelope()
        assert plots.COLUMNS <= len(low) <= 2 * plots.COLUMNS + 1
        assert low.min() == waveform.mean(axis=1).min() and high.max() == waveform.mean(axis=1).max()
    np.testing.assert_allclose(blocked.envelope()[1], whole.envelope()[1])
    spec = blocked.spectrogram_db()
    assert spec.shape[0] == plots.FREQUENCY_ROWS and spec.shape[1] <= 2 * plots.COLUMNS + 1
    np.testing.assert_allclose(spec, whole.spectrogram_db(), atol=1e-3)


def test_exit_status_tells_success_failed_inputs_and_configuration_apart(tmp_path, inputs, model_dir, capsys):
    good = [str(inputs / "stereo.wav"), "-o", str(tmp_path / "a"), "--model_dir", str(model_dir)]
    assert separate.main(good) == EXIT_OK
    assert separate.main(good) == EXIT_OK  # a rerun that skips every track
    bad = [str(inputs / "stereo.wav"), str(inputs / "empty.wav"), "-o", str(tmp_path / "b"), "--model_dir",
           str(model_dir)]
    assert separate.main(bad) == EXIT_INPUTS_FAILED
    assert (tmp_path / "b" / "stereo" / "vocals.wav").is_file()  # the others' stems are still written
    capsys.readouterr()
    assert separate.main([str(inputs / "stereo.wav"), "-o", str(tmp_path / "c"), "--model_dir",
                          str(tmp_path / "nothing")]) == EXIT_USAGE
    assert "no exported model at" in capsys.readouterr().err and not (tmp_path / "c").exists()
