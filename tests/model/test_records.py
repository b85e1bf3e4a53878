"""model.records: training patches survive encode -> decode/parse at float16 precision."""
from __future__ import annotations

import numpy as np
import pytest

from model import records

STEMS = ("mixture", "drums", "bass", "other", "vocals")


def _patch(samples: int = 512, channels: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {name: rng.uniform(-1, 1, (samples, channels)).astype(np.float32) for name in STEMS}


def _assert_float16_close(decoded: np.ndarray, original: np.ndarray) -> None:
    assert decoded.shape == original.shape
    np.testing.assert_allclose(decoded, original, rtol=1e-3, atol=1e-4)  # float16: 11-bit mantissa


@pytest.mark.parametrize("channels", [1, 2])
def test_encode_then_decode_patch(channels):
    stems = _patch(channels=channels)
    serialized = records.encode_patch("Artist - Song", "train", 44100 * 3, 11025, stems)
    decoded = records.decode_patch(serialized)
    assert (decoded["track_id"], decoded["split"]) == ("Artist - Song", "train")
    assert (decoded["offset"], decoded["sample_rate"]) == (44100 * 3, 11025)
    assert tuple(decoded["stems"]) == STEMS  # musdb order kept
    for name in STEMS:
        _assert_float16_close(decoded["stems"][name], stems[name])


def test_parse_patch_in_a_tf_data_pipeline():
    import tensorflow as tf

    stems = _patch()
    serialized = [records.encode_patch(f"song {i}", "valid", 512 * i, 11025, stems) for i in range(3)]
    wanted = ("mixture", "vocals", "drums")
    dataset = tf.data.Dataset.from_tensor_slices(serialized).map(
        lambda example: records.parse_patch(example, wanted, channels=2))
    parsed = list(dataset.as_numpy_iterator())
    assert [patch["track_id"] for patch in parsed] == [b"song 0", b"song 1", b"song 2"]
    assert [patch["offset"] for patch in parsed] == [0, 512, 1024]
    for patch in parsed:
        assert set(patch) == {"track_id", "offset", *wanted}
        for name in wanted:
            assert patch[name].dtype == np.float32
            _assert_float16_close(patch[name], stems[name])


def test_float16_keeps_quiet_samples():
    quiet = {"mixture": np.full((64, 2), 3e-5, dtype=np.float32)}
    decoded = records.decode_patch(records.encode_patch("t", "train", 0, 11025, quiet))
    np.testing.assert_allclose(decoded["stems"]["mixture"], 3e-5, rtol=1e-2)


def test_stems_of_different_shapes_are_refused():
    stems = _patch()
    stems["vocals"] = stems["vocals"][:-1]
    with pytest.raises(ValueError, match="differ in shape"):
        records.encode_patch("song", "train", 0, 11025, stems)

