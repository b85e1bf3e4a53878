"""audio.codec_blocks: block-wise decoding equals whole-file decoding; encoders write what they are asked."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import soundfile as sf

from audio import codec
from audio.codec_blocks import AudioReader, AudioWriter, EncodeError


def _tone(samples: int, channels: int, rate: int) -> np.ndarray:
    time = np.arange(samples) / rate
    return np.stack([0.4 * np.sin(2 * np.pi * 330 * (1 + 0.5 * c) * time) for c in range(channels)],
                    axis=1).astype(np.float32)


def _read_all(path, stream: int = 0, block: int = 1000) -> tuple[np.ndarray, int]:
    reader = AudioReader(path, stream=stream, block=block)
    blocks = list(reader)
    assert all(b.dtype == np.float32 and b.shape[1] == reader.channels for b in blocks)
    assert reader.samples == sum(b.shape[0] for b in blocks)
    return np.concatenate(blocks), reader.rate


@pytest.mark.parametrize("name", ["tone.wav", "tone.flac", "tone.ogg", "tone.mp3", "tone.m4a"])
def test_blocks_equal_whole_file_decoding(tmp_path, name):
    path = tmp_path / name
    source = _tone(22050, 2, 44100)
    if name.endswith(".m4a"):  # AAC: only ffmpeg reads it
        wav = tmp_path / "source.wav"
        sf.write(wav, source, 44100)
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), "-c:a", "aac", str(path)], check=True)
    else:
        sf.write(path, source, 44100)
    blocks, rate = _read_all(path)
    whole, whole_rate = codec.decode(path)
    assert rate == whole_rate == 44100
    # mp3: ffmpeg here, libsndfile in codec.decode; the two decoders agree to float rounding
    np.testing.assert_allclose(blocks, whole, atol=1e-5 if name.endswith(".mp3") else 0)


def test_stem_mp4_streams_are_trimmed_to_their_true_length(tmp_path):
    path = tmp_path / "song.stem.mp4"
    streams = [_tone(30000, 2, 44100) * gain for gain in (1.0, 0.5, 0.25)]
    codec.mux_stem_mp4(path, streams, 44100)
    for stream in (0, 2):
        blocks, _ = _read_all(path, stream=stream, block=4096)
        np.testing.assert_array_equal(blocks, codec.decode(path, stream=stream)[0])
        assert blocks.shape == (30000, 2)


def test_stopping_early_leaves_no_process_behind(tmp_path):
    path = tmp_path / "song.stem.mp4"
    codec.mux_stem_mp4(path, [_tone(44100, 2, 44100)] * 2, 44100)
    reader = iter(AudioReader(path, block=512))
    assert next(reader).shape == (512, 2)
    reader.close()  # the generator kills and reaps ffmpeg; nothing raises


def test_unreadable_inputs_say_why(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(codec.DecodeError, match="empty file"):
        AudioReader(tmp_path / "empty.wav")
    with pytest.raises(codec.DecodeError, match="no such file"):
        AudioReader(tmp_path / "missing.wav")
    with pytest.raises(codec.DecodeError, match="not a readable media file"):
        AudioReader(tmp_path / "noise.wav")
    sf.write(tmp_path / "one.wav", _tone(100, 1, 8000), 8000)
    with pytest.raises(codec.DecodeError, match="stream 1 asked for"):
        AudioReader(tmp_path / "one.wav", stream=1)


@pytest.mark.parametrize("fmt, subtype, tolerance", [("wav", "PCM_16", 2 / 32768), ("wav", "PCM_24", 1e-6),
                                                      ("wav", "FLOAT", 0.0), ("flac", "PCM_24", 1e-6)])
def test_lossless_writers_round_trip_block_by_block(tmp_path, fmt, subtype, tolerance):
    source = _tone(10000, 3, 22050)
    path = tmp_path / f"out.{fmt}"
    with AudioWriter(path, 22050, 3, fmt, subtype) as writer:
        for start in range(0, len(source), 777):
            writer.write(source[start:start + 777])
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (22050, 3, 10000, subtype)
    np.testing.assert_allclose(sf.read(path, dtype="float32")[0], source, atol=tolerance)


@pytest.mark.parametrize("fmt", ["wav", "flac"])  # a flac's samples go to libsndfile as floats
def test_pcm16_stems_have_the_bits_libsndfile_gives_float_samples(tmp_path, fmt):
    """The writer converts to 16 bits itself (faster); the file must hold what libsndfile's own conversion
    of the same float samples writes, over full scale and at the clipping edges too."""
    rng = np.random.default_rng(0)
    source = (rng.standard_normal((20000, 2)) * 0.3).astype(np.float32)
    source[:8] = np.array([1.0, -1.0, 1.5, -1.5, 32767 / 32768, -32768 / 32768, 1e-6, -1e-6],
                          dtype=np.float32)[:, None]
    ours, theirs = tmp_path / f"ours.{fmt}", tmp_path / f"theirs.{fmt}"
    with AudioWriter(ours, 44100, 2, fmt, "PCM_16") as writer:
        for start in range(0, len(source), 4097):
            writer.write(source[start:start + 4097])
    sf.write(theirs, source, 44100, "PCM_16")
    np.testing.assert_array_equal(sf.read(ours, dtype="int16")[0], sf.read(theirs, dtype="int16")[0])


@pytest.mark.parametrize("fmt, channels, kbps", [("mp3", 2, 96), ("ogg", 1, 64), ("ogg", 4, 256)])
def test_lossy_writers_keep_rate_channels_and_bitrate(tmp_path, fmt, channels, kbps):
    source = _tone(44100 * 4, channels, 44100) + 0.05 * np.random.default_rng(1).standard_normal(
        (44100 * 4, channels)).astype(np.float32)
    path = tmp_path / f"out.{fmt}"
    with AudioWriter(path, 44100, channels, fmt, bitrate=f"{kbps}k") as writer:
        for start in range(0, len(source), 44100):
            writer.write(source[start:start + 44100])
    decoded, rate = codec.decode(path)
    assert rate == 44100 and decoded.shape[1] == channels
    assert abs(decoded.shape[0] - source.shape[0]) < 3000  # encoder delay and padding
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-of", "json", str(path)],
                           capture_output=True, text=True, check=True)
    bitrate = int(json.loads(probe.stdout)["format"]["bit_rate"])
    assert 0.7 < bitrate / (kbps * 1000) < 1.3


def test_mp3_refuses_more_than_two_channels(tmp_path):
    with pytest.raises(EncodeError, match="at most 2 channels"):
        AudioWriter(tmp_path / "x.mp3", 44100, 3, "mp3")
