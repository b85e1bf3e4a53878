"""Export a trained mask network as a self-describing folder: loading needs only its path.

<dir>/saved_model/   TF SavedModel, signature `serving_default`: magnitude -> one mask per head
<dir>/config.json    the Config that built and trained it
<dir>/VERSION        a content hash of the weights, used by the catalogue job to skip done tracks
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from model.config import Config
from model.separator import EXPORT_DIR


def weights_version(model: keras.Model) -> str:
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:12]


def export_model(model: keras.Model, config: Config, out_dir: str | Path) -> Path:
    """Write the SavedModel, config and version to out_dir, replacing it whole (staged, then renamed)."""
    out_dir = Path(out_dir)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    spec = tf.TensorSpec([None, None, config.stft.bins, config.audio.channels], tf.float32, name="magnitude")

    @tf.function(input_signature=[spec])
    def serve(magnitude: tf.Tensor) -> dict[str, tf.Tensor]:
        return model(magnitude, training=False)

    module = tf.Module()
    module.model = model
    module.serve = serve
    tf.saved_model.save(module, str(staging / EXPORT_DIR), signatures={"serving_default": serve})
    config.save(staging)
    (staging / "VERSION").write_text(weights_version(model) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    return out_dir
