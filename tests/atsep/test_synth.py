"""`atsep generate`: deterministic MUSDB18-shaped songs whose stems are what they claim to be."""
from __future__ import annotations

import numpy as np
import pytest

from atsep import synth
from audio import codec
from model import dsp
from model.config import STEM_NAMES

RATE = 44100
PARTS = ("mixture", *STEM_NAMES)


@pytest.fixture(scope="module")
def hq_songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hq")
    return root, synth.generate(root, count=3, seed=0, seconds=2.0, layout="hq")


@pytest.fixture(scope="module")
def stem_songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("stems")
    return root, synth.generate(root, count=2, seed=0, seconds=2.0, layout="stems")


@pytest.fixture(scope="module")
def stems_by_seed():
    """Four-second songs of three seeds, as float [samples, 2] stems."""
    return [{name: stem / synth.PCM_SCALE for name, stem in synth.song_stems(seed, 0, 4 * RATE, RATE).items()}
            for seed in range(3)]


def _file_bytes(root):
    return {path.relative_to(root): path.read_bytes() for path in sorted(root.rglob("*.wav"))}


def test_same_seed_writes_identical_songs_and_another_seed_different_ones(tmp_path):
    first, again, other = (synth.generate(tmp_path / name, count=2, seed=seed, seconds=0.5, layout="hq")
                           for name, seed in (("a", 7), ("b", 7), ("c", 8)))
    assert _file_bytes(tmp_path / "a") == _file_bytes(tmp_path / "b")
    for song, different in zip(first, other):
        ours, theirs = codec.decode(song / "mixture.wav")[0], codec.decode(different / "mixture.wav")[0]
        assert not np.array_equal(ours, theirs)


def test_songs_of_one_run_differ_from_each_other():
    one, two = (synth.song_stems(3, index, RATE, RATE)["mixture"] for index in (0, 1))
    assert not np.array_equal(one, two)


def test_hq_layout_has_five_wavs_whose_mixture_is_exactly_the_sum(hq_songs):
    root, tracks = hq_songs
    assert [track.parent.name for track in tracks] == ["train", "train", "test"]
    for track in tracks:
        decoded = {part: codec.decode(track / f"{part}.wav") for part in PARTS}
        assert {rate for _, rate in decoded.values()} == {RATE}
        waveforms = {part: waveform for part, (waveform, _) in decoded.items()}
        assert {waveform.shape for waveform in waveforms.values()} == {(2 * RATE, 2)}
        assert np.array_equal(waveforms["mixture"], sum(waveforms[stem] for stem in STEM_NAMES))
        assert 0.5 < np.abs(waveforms["mixture"]).max() < 0.9


def test_stems_layout_decodes_to_five_aligned_streams_close_to_the_source(stem_songs):
    root, paths = stem_songs
    assert [path.relative_to(root).as_posix() for path in paths] == [
        "train/Synth 000 - Seed 0.stem.mp4", "test/Synth 001 - Seed 0.stem.mp4"]
    for index, path in enumerate(paths):
        streams, rate = codec.decode_streams(path)
        source = synth.song_stems(0, index, 2 * RATE, RATE)
        assert rate == RATE and len(streams) == 5
        for stream, part in zip(streams, PARTS):  # musdb's order, original length, no codec delay
            assert stream.shape == (2 * RATE, 2)
            assert _relative_error(stream, source[part] / synth.PCM_SCALE) < 0.15, part
        assert _relative_error(streams[0], sum(streams[1:])) < 0.15


@pytest.mark.parametrize("count, test_count, expected_test", [
    (1, None, 0), (2, None, 1), (5, None, 1), (8, None, 2), (12, None, 2), (3, 0, 0), (3, 3, 3)])
def test_split_counts(tmp_path, count, test_count, expected_test):
    paths = synth.generate(tmp_path, count, seconds=0.1, layout="hq", test_count=test_count)
    assert len(paths) == count
    assert sum(path.parent.name == "test" for path in paths) == expected_test
    assert len(list((tmp_path / "test").glob("*/mixture.wav"))) == expected_test
    assert len({path.name for path in paths}) == count


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="test_count"):
        synth.generate(tmp_path, 2, test_count=3, layout="hq")
    with pytest.raises(ValueError, match="layout"):
        synth.generate(tmp_path, 2, layout="wav")


def test_cli_writes_songs_and_says_where(tmp_path, capsys):
    assert synth.main(["--output", str(tmp_path), "--count", "2", "--seconds", "0.2", "--layout", "hq",
                       "--seed", "3"]) == 0
    assert str(tmp_path.resolve()) in capsys.readouterr().out
    assert len(list(tmp_path.glob("*/Synth * - Seed 3/vocals.wav"))) == 2


def test_vocals_are_pitched_where_voiced_and_pause_between_phrases(stems_by_seed):
    for stems in stems_by_seed:
        frames = _frames(stems["vocals"].mean(axis=1), 2048)
        rms = np.sqrt(np.mean(frames ** 2, axis=1))
        voiced = frames[rms > 0.5 * np.percentile(rms, 90)]
        assert np.median([_periodicity(frame) for frame in voiced]) > 0.9
        assert np.mean(rms < 1e-4) > 0.05  # silence between phrases


def test_drums_are_transient_rich_and_noisy(stems_by_seed):
    for stems in stems_by_seed:
        assert _onsets_per_second(stems["drums"]) >= 2.0
        crest = {name: _envelope_crest(stems[name]) for name in ("drums", "bass")}
        assert crest["drums"] > 3.0 and crest["drums"] > crest["bass"]
        treble = {name: _share_of_energy(stems[name], above=4000) for name in STEM_NAMES}
        assert treble["drums"] > 0.05 and treble["drums"] == max(treble.values())


def test_bass_energy_is_mostly_below_300_hz(stems_by_seed):
    for stems in stems_by_seed:
        assert 1 - _share_of_energy(stems["bass"], above=300) > 0.9
        assert 1 - _share_of_energy(stems["other"], above=300) < 0.5


def _relative_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(np.sqrt(np.mean((estimate - reference) ** 2) / np.mean(reference ** 2)))


def _frames(mono: np.ndarray, size: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(mono, size)[::size]


def _periodicity(frame: np.ndarray) -> float:
    """Peak of the normalised autocorrelation at lags of 70-1000 Hz (1 = perfectly periodic)."""
    frame = frame - frame.mean()
    autocorrelation = np.correlate(frame, frame, "full")[len(frame) - 1:]
    autocorrelation *= len(frame) / (len(frame) - np.arange(len(frame))) / autocorrelation[0]
    return float(autocorrelation[RATE // 1000: RATE // 70].max())


def _onsets_per_second(waveform: np.ndarray) -> float:
    """Peaks of positive spectral flux (log magnitude) above mean + 2 std."""
    spec = np.log1p(1000 * np.abs(dsp.stft(waveform.mean(axis=1, keepdims=True), 1024, 256)[:, :, 0]))
    flux = np.maximum(np.diff(spec, axis=0), 0).sum(axis=1)
    middle = flux[1:-1]
    peaks = (middle > flux.mean() + 2 * flux.std()) & (middle >= flux[:-2]) & (middle >= flux[2:])
    return peaks.sum() * RATE / len(waveform)


def _envelope_crest(waveform: np.ndarray) -> float:
    """Loudest 10 ms frames over the median frame: spiky for hits that decay fast."""
    rms = np.sqrt(np.mean(_frames(waveform.mean(axis=1), RATE // 100) ** 2, axis=1))
    return float(np.percentile(rms, 99) / np.median(rms))


def _share_of_energy(waveform: np.ndarray, above: float) -> float:
    power = np.abs(np.fft.rfft(waveform.mean(axis=1))) ** 2
    return float(power[np.fft.rfftfreq(len(waveform), 1 / RATE) > above].sum() / power.sum())
