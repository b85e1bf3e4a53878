"""TFRecord schema of training patches: every stem's waveform at the records' rate (model/frontend.py).

One tf.train.Example per patch:
  track_id      bytes    the song's name
  split         bytes    train / valid / test
  offset        int64    first sample of the patch within the song, at `sample_rate`
  sample_rate   int64    the records' rate (data.rate_factor x the model's)
  samples       int64    samples per channel in the patch
  channels      int64
  stems         bytes[]  names of the stems present (musdb order; "mixture" first)
  audio/<stem>  bytes    float16 little-endian, interleaved [samples, channels]
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

SCHEMA_VERSION = 1
AUDIO_DTYPE = "<f2"


def _bytes(values: list[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _int(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def encode_patch(track_id: str, split: str, offset: int, sample_rate: int,
                 stems: dict[str, np.ndarray]) -> bytes:
    """Serialise one patch; `stems` maps names to [samples, channels] arrays of equal shape."""
    shapes = {waveform.shape for waveform in stems.values()}
    if len(shapes) != 1:
        raise ValueError(f"stems of one patch differ in shape: {sorted(shapes)}")
    samples, channels = shapes.pop()
    feature = {
        "track_id": _bytes([track_id.encode()]),
        "split": _bytes([split.encode()]),
        "offset": _int(offset),
        "sample_rate": _int(sample_rate),
        "samples": _int(samples),
        "channels": _int(channels),
        "stems": _bytes([name.encode() for name in stems]),
    }
    for name, waveform in stems.items():
        feature[f"audio/{name}"] = _bytes([np.asarray(waveform, dtype=AUDIO_DTYPE).tobytes()])
    # deterministic: protobuf otherwise orders the feature map by a per-process hash
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def parse_patch(serialized: tf.Tensor, stem_names: tuple[str, ...], channels: int) -> dict[str, tf.Tensor]:
    """Parse one serialised patch into float32 [samples, channels] tensors for `stem_names`."""
    spec = {
        "track_id": tf.io.FixedLenFeature([], tf.string),
        "offset": tf.io.FixedLenFeature([], tf.int64),
        **{f"audio/{name}": tf.io.FixedLenFeature([], tf.string) for name in stem_names},
    }
    example = tf.io.parse_single_example(serialized, spec)
    parsed = {"track_id": example["track_id"], "offset": example["offset"]}
    for name in stem_names:
        audio = tf.io.decode_raw(example[f"audio/{name}"], tf.float16, little_endian=True)
        parsed[name] = tf.reshape(tf.cast(audio, tf.float32), [-1, channels])
    return parsed


def decode_patch(serialized: bytes) -> dict:
    """Decode a serialised patch into plain Python and numpy values (for tests and inspection)."""
    example = tf.train.Example.FromString(serialized)
    features = example.features.feature
    channels = features["channels"].int64_list.value[0]
    decoded = {
        "track_id": features["track_id"].bytes_list.value[0].decode(),
        "split": features["split"].bytes_list.value[0].decode(),
        "offset": features["offset"].int64_list.value[0],
        "sample_rate": features["sample_rate"].int64_list.value[0],
        "stems": {},
    }
    for name in (value.decode() for value in features["stems"].bytes_list.value):
        raw = np.frombuffer(features[f"audio/{name}"].bytes_list.value[0], dtype=AUDIO_DTYPE)
        decoded["stems"][name] = raw.astype(np.float32).reshape(-1, channels)
    return decoded
