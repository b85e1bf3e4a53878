"""audio.codec: decoding through libsndfile and ffmpeg, clear errors, and `.stem.mp4` round trips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from audio import codec
from tests.conftest import SHARED_DATA


def _tone(samples: int, channels: int, rate: int, frequency: float = 440.0) -> np.ndarray:
    time = np.arange(samples) / rate
    return np.stack([0.4 * np.sin(2 * np.pi * frequency * (1 + 0.5 * c) * time) for c in range(channels)],
                    axis=1).astype(np.float32)


def _correlation(one: np.ndarray, two: np.ndarray) -> float:
    return float(np.corrcoef(one.ravel(), two.ravel())[0, 1])


@pytest.mark.parametrize("suffix, rate, exact", [
    (".wav", 22050, True), (".flac", 44100, True), (".ogg", 48000, False), (".mp3", 44100, False),
    (".mp3", 32000, False)])
@pytest.mark.parametrize("channels", [1, 2])
def test_decode_keeps_rate_channels_and_length(tmp_path, suffix, rate, exact, channels):
    source = _tone(rate // 2, channels, rate)
    path = tmp_path / f"tone{suffix}"
    sf.write(path, source, rate)
    waveform, decoded_rate = codec.decode(path)
    assert decoded_rate == rate
    assert waveform.dtype == np.float32 and waveform.shape == source.shape
    if exact:
        np.testing.assert_allclose(waveform, source, atol=2 / 32768)
    else:
        assert _correlation(waveform, source) > 0.95


def test_zero_byte_file_is_refused(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(codec.DecodeError, match="empty file"):
        codec.decode(tmp_path / "empty.wav")


@pytest.mark.parametrize("name", ["not_audio.wav", "not_audio.mp3", "not_audio.stem.mp4"])
def test_non_audio_bytes_are_refused(tmp_path, name):
    (tmp_path / name).write_bytes(b"this is a text file, not a song\n" * 200)
    with pytest.raises(codec.DecodeError, match="not a readable media file"):
        codec.decode(tmp_path / name)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(codec.DecodeError, match="no such file"):
        codec.decode(tmp_path / "absent.flac")


def test_nan_samples_are_refused(tmp_path):
    waveform = _tone(1000, 2, 44100)
    waveform[10, 1] = np.nan
    sf.write(tmp_path / "nan.wav", waveform, 44100, subtype="FLOAT")
    with pytest.raises(codec.DecodeError, match="NaN"):
        codec.decode(tmp_path / "nan.wav")


def test_encode_writes_what_decode_reads(tmp_path):
    waveform = _tone(4410, 2, 44100)
    codec.encode(tmp_path / "out.flac", waveform, 44100)
    decoded, rate = codec.decode(tmp_path / "out.flac")
    assert rate == 44100
    np.testing.assert_allclose(decoded, waveform, atol=2 / 32768)


@pytest.fixture(scope="module")
def stem_file(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """Five distinct stereo streams of an odd length (not a whole number of AAC frames), muxed."""
    rate, samples = 44100, 44100 + 777
    noise = np.random.default_rng(0).normal(0, 0.05, (5, samples, 2)).astype(np.float32)
    sources = [_tone(samples, 2, rate, 220.0 * (index + 1)) + noise[index] for index in range(5)]
    for index, source in enumerate(sources):  # a click at a different place in each stream
        source[5000 + 1000 * index: 5010 + 1000 * index] += 0.5
    path = tmp_path_factory.mktemp("stems") / "song.stem.mp4"
    codec.mux_stem_mp4(path, sources, rate)
    return path, sources


@pytest.fixture(scope="module")
def decoded_stem_file(stem_file) -> tuple[list[np.ndarray], int]:
    return codec.decode_streams(stem_file[0])


def test_stem_mp4_round_trip(stem_file, decoded_stem_file):
    path, sources = stem_file
    streams, rate = decoded_stem_file
    assert rate == 44100 and len(streams) == 5
    for stream, source in zip(streams, sources):
        assert stream.shape == source.shape  # AAC padding at both ends removed
        assert _correlation(stream, source) > 0.97  # same order, AAC-level closeness
    assert codec.decode(path, stream=3)[0].shape == sources[3].shape


def test_stem_mp4_streams_are_not_delayed_by_aac_priming(stem_file, decoded_stem_file):
    sources, (streams, _) = stem_file[1], decoded_stem_file
    for stream, source in zip(streams, sources):
        assert _lag(stream[:, 0], source[:, 0]) == 0


def test_asking_for_a_missing_stream_is_refused(stem_file):
    with pytest.raises(codec.DecodeError, match="5 audio stream"):
        codec.decode(stem_file[0], stream=5)


@pytest.mark.shared_data
def test_musdb_preview_decodes_to_its_stated_length_with_aligned_stems():
    path = SHARED_DATA / "musdb18-7" / "train" / "ANiMAL - Rockshow.stem.mp4"
    streams, rate = codec.decode_streams(path)
    assert rate == 44100 and len(streams) == 5
    assert {stream.shape for stream in streams} == {(int(6.8 * 44100), 2)}  # the edit list's length
    mixture, stems = streams[0], sum(streams[1:])
    assert _lag(mixture[:, 0], stems[:, 0]) == 0
    assert _correlation(mixture, stems) > 0.99


def _lag(delayed: np.ndarray, reference: np.ndarray, search: int = 2048) -> int:
    """The shift (in samples) of `delayed` against `reference` with the highest correlation."""
    scores = signal.correlate(delayed[: len(reference)], reference[search: len(reference) - search],
                              mode="valid")
    return int(np.argmax(scores)) - search


@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".stem.mp4"])
def test_a_decode_cap_holds_whatever_the_header_says(tmp_path, suffix):
    """With max_seconds, no decoder returns (or holds) more than a second past it: a file whose header
    understates its length cannot make preprocess hold the whole song. Limits.check_decoded refuses it."""
    from audio.limits import LimitError, Limits

    rate = 22050
    waveform = (0.3 * np.sin(2 * np.pi * 220 * np.arange(6 * rate) / rate))[:, None].repeat(2, axis=1)
    path = tmp_path / f"six{suffix}"
    if suffix == ".stem.mp4":
        codec.mux_stem_mp4(path, [waveform.astype(np.float32)] * 5, rate)
        streams, got_rate = codec.decode_streams(path, max_seconds=2.0)
        lengths = [len(stream) for stream in streams]
    else:
        sf.write(path, waveform, rate)
        decoded, got_rate = codec.decode(path, max_seconds=2.0)
        lengths = [len(decoded)]
        assert len(codec.decode(path)[0]) >= 6 * rate - 2048  # uncapped: the whole song
    assert got_rate == rate and all(2 * rate < n <= 3 * rate + 2048 for n in lengths), lengths
    with pytest.raises(LimitError, match="runs past the 0 min 02 s limit"):
        Limits(max_seconds=2.0).check_decoded(max(lengths), rate)
