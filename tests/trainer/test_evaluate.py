"""`atsep evaluate` on tiny MUSDB-HQ-layout songs with a real (untrained) exported model and real museval."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf

from model.model_dir import BUNDLED_MODEL_DIR
from trainer import evaluate as ev

RATE = 44100
SECONDS = 3.0


def _stems(seed: int, silent_vocals: bool = False) -> dict[str, np.ndarray]:
    """Distinct stereo stems: a vibrato tone, noise bursts, a low sine and a panned chord."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * SECONDS)) / RATE
    vocals = 0.3 * np.sin(2 * np.pi * (440 + seed * 30) * t + 3 * np.sin(2 * np.pi * 5 * t))
    bursts = np.exp(-30 * (t % 0.25))
    drums = 0.4 * bursts[:, None] * rng.standard_normal((t.size, 2))
    bass = 0.3 * np.sin(2 * np.pi * (82 + seed) * t)
    chord = 0.1 * (np.sin(2 * np.pi * 1320 * t) + np.sin(2 * np.pi * 1760 * t))
    stems = {
        "vocals": np.stack([vocals, vocals], axis=1) * (0.0 if silent_vocals else 1.0),
        "drums": drums,
        "bass": np.stack([bass, 0.8 * bass], axis=1),
        "other": np.stack([chord, 0.3 * chord], axis=1),
    }
    # A little breath noise keeps the tonal stems full-rank: BSSEval's 512-tap projections of pure
    # sines are ill-conditioned and give meaningless SIR/SAR.
    return {stem: (waveform + 0.003 * rng.standard_normal(waveform.shape) * np.any(waveform)).astype(np.float32)
            for stem, waveform in stems.items()}


def _write_song(folder, stems: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True)
    for stem, waveform in {"mixture": sum(stems.values()), **stems}.items():
        sf.write(folder / f"{stem}.wav", waveform, RATE, subtype="FLOAT")


@pytest.fixture
def songs(tmp_path):
    root = tmp_path / "musdb"
    _write_song(root / "test" / "Song A", _stems(1))
    _write_song(root / "test" / "Song B", _stems(2, silent_vocals=True))  # vocals cannot be scored
    return root


@pytest.fixture
def model_dir(tmp_path, tiny_config):
    from model.export import export_model
    from model.unet import build_unet

    return export_model(build_unet(tiny_config), tiny_config, tmp_path / "model")


def test_evaluate_writes_model_mixture_and_oracle_scores(songs, model_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    code = ev.main([str(songs), "--model_dir", str(model_dir), "--split", "test", "--output", str(out)])

    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tracks"] == ["Song A", "Song B"]
    assert summary["targets"] == ["vocals", "drums", "residual"]
    scores = summary["scores"]
    for method in ("model", "mixture", "oracle"):
        for target in ("vocals", "drums", "residual"):
            assert all(math.isfinite(scores[method][target][m]) for m in ("SDR", "SIR", "SAR", "ISR"))
    for target in ("vocals", "drums", "residual"):
        assert scores["oracle"][target]["SDR"] > scores["mixture"][target]["SDR"] + 3.0
        assert scores["oracle"][target]["SIR"] > scores["mixture"][target]["SIR"] + 3.0
    # Song B's silent vocals are reported as null; its other stems are scored.
    song_b = json.loads((out / "tracks" / "Song B.json").read_text())["scores"]
    assert all(song_b[method]["vocals"]["SDR"] is None for method in ("model", "mixture", "oracle"))
    assert all(isinstance(song_b[method]["drums"]["SDR"], float) for method in ("model", "mixture", "oracle"))
    # So the vocals summary is Song A's alone: the median skips the missing value.
    song_a = json.loads((out / "tracks" / "Song A.json").read_text())["scores"]
    assert scores["oracle"]["vocals"]["SDR"] == pytest.approx(song_a["oracle"]["vocals"]["SDR"])
    table = capsys.readouterr().out
    assert "vocals SDR" in table and "oracle" in table
    markdown = (out / "summary.md").read_text()
    assert markdown.startswith("| method | vocals SDR |") and "| mixture |" in markdown
    page = (out / "index.html").read_text()
    assert "oracle" in page and "<svg" in page  # the evaluation's HTML report, with its charts
    assert summary["legend"] == ev.LEGEND and "dithered 60 dB down" in page  # how SIR and SAR were taken


def test_score_matches_museval_evaluate_directly():
    import museval

    rate = 8000
    rng = np.random.default_rng(0)
    references = {name: rng.standard_normal((3 * rate, 2)) for name in ("a", "c")}
    estimates = {name: references[name] + 0.01 * rng.standard_normal((3 * rate, 2)) for name in references}
    estimates["c"] = estimates["c"] + 0.3 * references["a"]  # leakage: a lower SIR for c

    scores = ev.score(references, estimates, rate)

    sdr, isr, sir, sar = museval.evaluate(list(references.values()), list(estimates.values()),
                                          win=rate, hop=rate)
    for index, name in enumerate(references):
        assert scores[name]["SDR"] == pytest.approx(np.nanmedian(sdr[index]))
        # white-noise references condition museval's projection well: the dither changes next to nothing
        assert scores[name]["SIR"] == pytest.approx(np.nanmedian(sir[index]), abs=0.1)
        assert scores[name]["SAR"] == pytest.approx(np.nanmedian(sar[index]), abs=0.1)
        # a's ISR, 54 dB, comes near the dither's floor, 60 dB down: within 1 dB
        assert scores[name]["ISR"] == pytest.approx(np.nanmedian(isr[index]), abs=1.0)
    assert scores["a"]["SDR"] > 30.0  # reference + noise 40 dB down
    assert scores["c"]["SIR"] < scores["a"]["SIR"] - 10.0


def test_frame_sdr_is_museval_sdr_window_by_window():
    """The closed form gives museval's SDR in every window: its framing (the partial tail left out), a
    window where one estimate is silent (NaN in both), sources of very different quality."""
    import museval

    rate = 8000
    rng = np.random.default_rng(5)
    true = [rng.standard_normal((3 * rate + 1234, 2)) for _ in range(3)]
    estimated = [reference + scale * rng.standard_normal(reference.shape)
                 for reference, scale in zip(true, (0.01, 0.5, 2.0))]
    estimated[1][rate:2 * rate] = 0.0
    estimated[2] = estimated[2] + 0.4 * true[0]

    sdr = ev.frame_sdr(true, estimated, rate)

    expected, *_ = museval.evaluate(true, estimated, win=rate, hop=rate)
    assert sdr.shape == expected.shape == (3, 3)
    assert np.isnan(expected[:, 1]).all()
    np.testing.assert_allclose(sdr, expected, rtol=1e-9, atol=1e-9)
    assert sdr[0, 0] > 35 and sdr[2, 0] < 0  # scores that differ: an identity would not pass


def test_sdr_above_sir_is_what_bss_eval_images_gives_an_attenuated_leaky_estimate():
    """Why SDR can sit above SIR and SAR in the tables: in BSSEval v4 (images) SIR and SAR are measured
    against the estimate's own image of the target (true image + spatial error), not the true one. A ratio
    mask both attenuates the target and lets other stems through; for 0.5 * target + 0.4 * other the
    definitions give SDR = 1 / (0.25 + 0.16) (3.9 dB), ISR = 1 / 0.25 (6.0 dB), SIR = 0.25 / 0.16 (1.9 dB),
    and no artefacts (SAR unbounded): museval's figures follow them, in the order score() reports them."""
    rate = 8000
    rng = np.random.default_rng(2)
    target, other = rng.standard_normal((4 * rate, 2)), rng.standard_normal((4 * rate, 2))
    estimate = 0.5 * target + 0.4 * other
    scores = ev.score({"target": target, "other": other},
                      {"target": estimate, "other": target + other - estimate}, rate)["target"]
    assert scores["SDR"] == pytest.approx(10 * math.log10(1 / 0.41), abs=0.3)
    assert scores["ISR"] == pytest.approx(10 * math.log10(1 / 0.25), abs=0.3)
    assert scores["SIR"] == pytest.approx(10 * math.log10(0.25 / 0.16), abs=0.3)
    assert scores["SAR"] > 50  # no artefacts but the references' dither, 60 dB down
    assert scores["SDR"] > scores["SIR"]


def _band_limited_noise(rng, samples: int, rate: int, cutoff: float, floor_db: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal((samples, 2)), axis=0)
    spectrum[np.fft.rfftfreq(samples, 1 / rate) > cutoff] *= 10 ** (floor_db / 20)
    return np.fft.irfft(spectrum, n=samples, axis=0)


def test_sir_and_sar_hold_on_references_with_an_empty_band():
    """AAC-coded stems have next to no energy above their cut-off. Such references make museval's
    least-squares projection ill-conditioned: on its own it scores this estimate (each source plus a tenth
    of another, plus white noise 30 dB down) at SIR -6 and SAR 0 dB, where the definitions give about 20
    and 22 dB. score() takes SIR, SAR and ISR on dithered references and SDR from museval as it stands."""
    import museval

    rate = 8000
    rng = np.random.default_rng(3)
    references = {name: _band_limited_noise(rng, 4 * rate, rate, 3000, -100) for name in ("a", "b", "c")}
    noise = 10 ** (-30 / 20)
    estimates = {name: references[name] + 0.1 * references[other] + noise * rng.standard_normal((4 * rate, 2))
                 for name, other in (("a", "b"), ("b", "c"), ("c", "a"))}

    scores = ev.score(references, estimates, rate)

    sdr, *_ = museval.evaluate(list(references.values()), list(estimates.values()), win=rate, hop=rate)
    for index, name in enumerate(references):
        assert scores[name]["SDR"] == pytest.approx(np.nanmedian(sdr[index]))
        assert 17 < scores[name]["SIR"] < 21
        assert scores[name]["SAR"] > 18


def test_frames_museval_skips_stay_skipped_for_every_metric():
    """A window where a source is silent is NaN in museval's frames; the dithered references are never
    silent, so their call would score it. score() keeps it out of SIR, SAR and ISR as out of SDR."""
    import museval

    rate = 8000
    rng = np.random.default_rng(4)
    references = {name: rng.standard_normal((2 * rate, 2)) for name in ("a", "b")}
    references["a"][rate:] = 0.0  # silent in the second window
    estimates = {name: waveform + 0.3 * rng.standard_normal(waveform.shape) for name, waveform in references.items()}

    scores = ev.score(references, estimates, rate)

    true, estimated = list(references.values()), list(estimates.values())
    sdr, *_ = museval.evaluate(true, estimated, win=rate, hop=rate)
    _, _, sir, _ = museval.evaluate(ev.dithered(true), estimated, win=rate, hop=rate)
    assert np.isnan(sdr[:, 1]).all() and not np.isnan(sir[:, 1]).any()
    for index, name in enumerate(references):
        kept = np.nanmedian(np.where(np.isnan(sdr), np.nan, sir)[index])
        assert scores[name]["SIR"] == pytest.approx(kept)
        assert kept != pytest.approx(np.nanmedian(sir[index]), abs=0.5)  # the silent window would move it


def test_score_reports_nan_for_a_silent_reference_and_scores_the_rest():
    rate = 8000
    rng = np.random.default_rng(1)
    references = {"a": rng.standard_normal((2 * rate, 2)), "b": np.zeros((2 * rate, 2)),
                  "c": rng.standard_normal((2 * rate, 2))}
    estimates = {name: waveform + 0.1 * rng.standard_normal(waveform.shape)
                 for name, waveform in references.items()}

    scores = ev.score(references, estimates, rate)

    assert all(math.isnan(value) for value in scores["b"].values())
    assert all(math.isfinite(value) for name in ("a", "c") for value in scores[name].values())


def test_oracle_masks_split_the_mixture_and_recover_a_lone_stem():
    stems = _stems(3)
    stems["mixture"] = sum(stems.values())

    oracle = ev.oracle_irm(stems, ("vocals", "drums"), ev.ORACLE_N_FFT, ev.ORACLE_HOP)

    assert set(oracle) == {"vocals", "drums", "residual"}
    np.testing.assert_allclose(sum(oracle.values()), stems["mixture"], atol=1e-4)
    references = ev.reference_stems(stems, ("vocals", "drums"))
    np.testing.assert_allclose(references["residual"], stems["bass"] + stems["other"])
    # The vibrato tone shares no bins with the other stems, so its mask recovers it nearly exactly.
    error = oracle["vocals"] - references["vocals"]
    assert 10 * np.log10(np.sum(references["vocals"] ** 2) / np.sum(error ** 2)) > 20.0


def test_select_tracks_by_split_and_name(tmp_path):
    root = tmp_path / "musdb"
    for folder in ("train/Actions - One Minute Smile", "train/Some Song", "test/Other Song"):
        (root / folder).mkdir(parents=True)
        (root / folder / "vocals.wav").write_bytes(b"")  # only the layout is read here

    def names(split, filters=None):
        return [track.name for track in ev.select_tracks(str(root), split, filters)]

    assert names("valid") == ["Actions - One Minute Smile"]
    assert names("train") == ["Some Song"]
    assert names("all") == ["Other Song", "Some Song", "Actions - One Minute Smile"]  # test, train, valid
    assert names("all", ["SONG"]) == ["Other Song", "Some Song"]
    assert sorted(names("all", ["other", "smile"])) == ["Actions - One Minute Smile", "Other Song"]


def test_parse_args_defaults_and_unknown_targets(songs, model_dir, tmp_path):
    args = ev.parse_args(["root"])
    assert (args.model_dir, args.split, args.output, args.tracks, args.targets) == \
        (BUNDLED_MODEL_DIR, "valid", "out/eval", None, None)
    with pytest.raises(ValueError, match="unknown targets"):
        ev.evaluate(str(songs), str(model_dir), "test", str(tmp_path / "x"), targets=["bass"])


def test_reference_scores_of_an_earlier_run_are_reused(songs, model_dir, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert ev.main([str(songs), "--model_dir", str(model_dir), "--split", "test", "--output", str(first),
                    "--tracks", "Song A"]) == 0
    path = first / "tracks" / "Song A.json"
    earlier = json.loads(path.read_text())
    earlier["scores"]["oracle"]["drums"]["SDR"] = 123.0  # a marker no scoring could produce
    path.write_text(json.dumps(earlier))
    assert ev.main([str(songs), "--model_dir", str(model_dir), "--split", "test", "--output", str(second),
                    "--tracks", "Song A", "--reference_scores", str(first)]) == 0
    song_a = json.loads((second / "tracks" / "Song A.json").read_text())["scores"]
    assert song_a["oracle"]["drums"]["SDR"] == 123.0  # reused, not recomputed
    assert song_a["mixture"] == earlier["scores"]["mixture"]
    assert song_a["model"]["drums"]["SDR"] == pytest.approx(earlier["scores"]["model"]["drums"]["SDR"], abs=1e-6)

    del earlier["dither_db"]  # as evaluations before the dither wrote them: their SIR and SAR are not reused
    path.write_text(json.dumps(earlier))
    third = tmp_path / "third"
    assert ev.main([str(songs), "--model_dir", str(model_dir), "--split", "test", "--output", str(third),
                    "--tracks", "Song A", "--reference_scores", str(first)]) == 0
    song_a = json.loads((third / "tracks" / "Song A.json").read_text())["scores"]
    assert song_a["oracle"]["drums"]["SDR"] != 123.0  # recomputed
