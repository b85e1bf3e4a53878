"""The separation report: rendered from a real separate job's outputs, checked in headless Chromium."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import soundfile as sf

from audio.codec import mux_stem_mp4
from reports.html import relative_href
from reports.separation import write_separation_report
from tests.reports.browser import inspect_page

# input file -> (track, rate, channels, seconds); MUSDB's .stem.mp4 (AAC) is what catalogues hold
SONGS = {"first song.wav": ("first song", 22050, 2, 1.2), "second #2.mp3": ("second #2", 44100, 1, 1.0),
         "third.stem.mp4": ("third", 44100, 2, 1.0)}
STEMS = ("vocals", "drums", "residual")


def _tone(seconds: float, rate: int, channels: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.repeat(0.3 * np.sin(2 * np.pi * 330 * t)[:, None], channels, axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_config) -> Path:
    """ROOT/songs (two songs and a broken file) separated by the real job into ROOT/out, then reported."""
    from beam_jobs import separate
    from model.export import export_model
    from model.unet import build_unet

    root = tmp_path_factory.mktemp("run")
    model_dir = export_model(build_unet(tiny_config), tiny_config, root / "model")
    songs = root / "songs"
    songs.mkdir()
    for name, (_, rate, channels, seconds) in SONGS.items():
        if name.endswith(".stem.mp4"):
            mux_stem_mp4(songs / name, [_tone(seconds, rate, channels)] * 3, rate)
        else:
            sf.write(songs / name, _tone(seconds, rate, channels), rate)
    (songs / "broken.wav").write_bytes(b"RIFF, but not really")
    separate.run([str(songs / "*"), "-o", str(root / "out"), "--model_dir", str(model_dir)])
    return root


def _track_urls(base: str) -> dict[str, str]:
    return {name: f"{base}/out/{quote(track)}/track.html" for name, (track, *_) in SONGS.items()}


def test_the_job_writes_an_index_listing_tracks_and_failures(run_dir):
    index = (run_dir / "out" / "index.html").read_text()
    for track, *_ in SONGS.values():
        assert f'href="{quote(track)}/track.html"' in index
    assert "broken.wav" in index and "decode" in index  # the dead letter, with its stage
    assert f'class="badge ok">ok</span> {len(SONGS)} separated' in index
    assert 'class="badge failed">failed</span> 1 failed' in index


def test_track_pages_link_every_stem_and_the_plot(run_dir):
    for name, (track, *_) in SONGS.items():
        page = (run_dir / "out" / track / "track.html").read_text()
        assert all(f'src="{stem}.wav"' in page for stem in STEMS)
        assert 'src="plot.png"' in page
        assert f'src="../../songs/{quote(name)}"' in page  # the mixture: the input, relative
        assert 'href="track.json"' in page and 'href="../index.html"' in page


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_pages_play_and_show_in_chromium(run_dir, browser, serve, scheme):
    base = serve(run_dir) if scheme == "http" else run_dir.as_uri()
    index = inspect_page(browser, f"{base}/out/index.html")
    assert index.errors == [] and index.title == "Separation run"
    for name, url in _track_urls(base).items():
        check = inspect_page(browser, url)
        assert check.errors == [], url
        assert len(check.audio) == 1 + len(STEMS) and check.bad_audio() == [], check.audio
        assert len(check.images) == 1 and check.bad_images() == [], check.images
        # the mixture (the input itself) and every stem last as long as the song (mp3 pads a little)
        assert [a["duration"] for a in check.audio] == pytest.approx([SONGS[name][3]] * 4, abs=0.06)


def _finished_run(out: Path, records: list[dict], failures: list[dict], limit: int = 100) -> None:
    """What the separate job leaves: a manifest shard, a dead-letter shard, summary.json from RunSummary."""
    from beam_jobs.run_summary import RunSummary

    out.mkdir(exist_ok=True)
    (out / "manifest-00000-of-00001.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "not json\n")
    (out / "dead_letter-00000-of-00001.jsonl").write_text("".join(json.dumps(f) + "\n" for f in failures))
    combine = RunSummary(limit)
    summary = combine.extract_output(combine.merge_accumulators(
        [combine.add_input(combine.create_accumulator(), record) for record in records + failures]))
    summary.update(manifest_shards=["manifest-00000-of-00001.jsonl"],
                   dead_letter_shards=["dead_letter-00000-of-00001.jsonl"])
    (out / "summary.json").write_text(json.dumps(summary))


def test_values_are_escaped_and_missing_fields_tolerated(tmp_path):
    out = tmp_path / "out"
    odd = '<b onmouseover="x">&\''
    records = [{"track": odd, "status": "ok", "input": "gs://elsewhere/song.mp3", "timings_s": {"total": 3.0}},
               {"track": "old", "status": "skipped", "input": str(tmp_path / "old.aiff"),
                "files": {"vocals": "old/vocals.wav"}, "stems": ["vocals"], "duration_s": 2.0,
                "timings_s": {"total": 1.0}}]
    _finished_run(out, records, [{"input": "x.wav", "reason": "<script>bad()</script>"}])
    write_separation_report(str(out))
    pages = [(out / "index.html").read_text(), (out / odd / "track.html").read_text(),
             (out / "old" / "track.html").read_text()]
    assert all(odd not in text and "<script>" not in text for text in pages)
    assert "&lt;b onmouseover=&quot;x&quot;&gt;&amp;&#x27;" in pages[0]
    assert "1 skipped" in pages[0] and "&lt;script&gt;" in pages[0]
    assert "not on the same disk or bucket" in pages[1]  # a gs:// input next to a local output
    assert "browsers do not play .aiff" in pages[2] and "2.0× real time" in pages[2]
    assert 'src="vocals.wav"' in pages[2]


def test_pages_follow_any_output_layout(tmp_path):
    """--filename '{stem}/{track}.{ext}': the page sits beside the record, links climb to the stems."""
    files = {"vocals": "vocals/a b.mp3", "plot": "plot/a b.png", "track": "track/a b.json"}
    record = {"track": "a b", "status": "ok", "stems": ["vocals"], "files": files,
              "outputs": {name: f"/elsewhere/{file}" for name, file in files.items()}}  # moved since
    _finished_run(tmp_path, [record], [])
    write_separation_report(str(tmp_path))
    page = (tmp_path / "track" / "a b.html").read_text()
    assert 'src="../vocals/a%20b.mp3"' in page and 'src="../plot/a%20b.png"' in page
    assert 'href="track/a%20b.html"' in (tmp_path / "index.html").read_text()


def test_the_index_stays_bounded_whatever_the_catalogue(tmp_path):
    """300 tracks and 250 failures, limit 20: the page names 20 of each, the slowest and the first inputs."""
    records = [{"track": f"t{n:03d}", "status": "ok", "duration_s": 1.0, "timings_s": {"total": n / 100}}
               for n in range(300)]
    failures = [{"input": f"in{n:03d}.wav", "track": f"f{n:03d}", "stage": "decode", "reason": "bad"}
                for n in reversed(range(250))]
    _finished_run(tmp_path, records, failures, limit=20)
    index = Path(write_separation_report(str(tmp_path))).read_text()
    assert index.count('/track.html"') == 20 and "t299/track.html" in index and "t279/track.html" not in index
    assert "in000.wav" in index and "in019.wav" in index and "in020.wav" not in index
    assert "the first 20 of 250 by input" in index
    assert 'href="manifest-00000-of-00001.jsonl"' in index and 'href="dead_letter-00000-of-00001.jsonl"' in index


def test_a_folder_without_a_finished_run_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no summary.json"):
        write_separation_report(str(tmp_path))


@pytest.mark.parametrize("target, folder, expected", [
    ("gs://b/out/t/vocals.wav", "gs://b/out/t", "vocals.wav"),
    ("gs://b/songs/a b#1.mp3", "gs://b/out/t", "../../songs/a%20b%231.mp3"),
    ("gs://other/x.mp3", "gs://b/out", None),
    ("/data/x:y?.wav", "/data/out", "../x%3Ay%3F.wav"),
    ("/data/x.wav", "gs://b/out", None),
])
def test_relative_links(target, folder, expected):
    assert relative_href(target, folder) == expected
