"""A tiny on-disk dataset in the preprocess job's layout: DATA/dataset.json, DATA/<split>/*.tfrecord[.gz]."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model.config import STEM_NAMES, Config


def patch_stems(rng: np.random.Generator, samples: int, channels: int, rate: int) -> dict[str, np.ndarray]:
    """Sines of random pitch per stem (noise for drums); the mixture is their sum."""
    t = np.arange(samples)[:, None] / rate
    stems = {}
    for name in STEM_NAMES:
        if name == "drums":
            wave = 0.3 * rng.standard_normal((samples, channels)) * np.exp(-20 * (t % 0.25))
        else:
            wave = 0.3 * np.sin(2 * np.pi * rng.uniform(80, 2000) * t + rng.uniform(0, 3, channels))
        stems[name] = wave.astype(np.float32)
    return {"mixture": sum(stems.values()), **stems}


def write_dataset(root: Path, config: Config, patches: dict[str, int], samples: int | None = None,
                  rate: int | None = None, shards: int = 2) -> Path:
    """Write `patches[split]` random patches per split; the valid split is GZIP-compressed."""
    import tensorflow as tf

    from model.frontend import records_rate
    from model.records import encode_patch

    rate = rate or records_rate(config)
    samples = samples or int(config.data.patch_seconds * rate)
    rng = np.random.default_rng(0)
    for split, count in patches.items():
        (root / split).mkdir(parents=True)
        gzip = split == "valid"
        options = tf.io.TFRecordOptions(compression_type="GZIP" if gzip else None)
        writers = [tf.io.TFRecordWriter(
            str(root / split / f"{split}-{index:05d}-of-{shards:05d}.tfrecord{'.gz' if gzip else ''}"), options)
            for index in range(shards)]
        for number in range(count):
            stems = patch_stems(rng, samples, config.audio.channels, rate)
            writers[number % shards].write(encode_patch(f"track{number // 2}", split, 0, rate, stems))
        for writer in writers:
            writer.close()
    info = {"schema_version": 1, "sample_rate": rate, "channels": config.audio.channels,
            "splits": {split: {"patches": count, "tracks": (count + 1) // 2} for split, count in patches.items()}}
    (root / "dataset.json").write_text(json.dumps(info))
    return root
