"""Mixed precision, forced on the CPU: float16 convolutions, float32 masks and loss, a float32 export."""
from __future__ import annotations

import numpy as np
import pytest

from tests.trainer.records import write_dataset


def test_auto_is_mixed_only_where_a_gpu_is_visible(monkeypatch):
    import tensorflow as tf

    from trainer import network, task

    assert task.parse_args([]).precision == "auto"
    assert [task.parse_args(["--precision", name]).precision for name in network.PRECISIONS] == list(network.PRECISIONS)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert network.resolve_precision("auto") == "float32"
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")])
    assert network.resolve_precision("auto") == "mixed_float16"
    assert network.resolve_precision("float32") == "float32"
    with pytest.raises(ValueError):
        network.resolve_precision("float16")


def test_mixed_float16_trains_a_step_and_exports_float32(tmp_path, tiny_config):
    import keras
    import tensorflow as tf

    from model.separator import Separator
    from reports.training import HISTORY_FILE
    from trainer import network, paths, publish, training
    from trainer.dataset_info import read_dataset_info
    from trainer.history import read_history

    config = tiny_config.replace(training__steps_per_epoch=1)
    data = str(write_dataset(tmp_path / "data", config, {"train": 4, "valid": 2}))
    dirs = paths.resolve_dirs(str(tmp_path / "model"), None, None)
    run = training.train(data, config, dirs, precision="mixed_float16")

    assert keras.config.dtype_policy().name == "float32"  # the policy did not leak out of the build
    assert run.precision == "mixed_float16"
    assert run.unet.get_layer("enc0_conv").compute_dtype == "float16"  # the policy really applied
    assert run.unet.get_layer("enc0_conv").kernel.dtype == "float32"  # with float32 weights
    masks = run.unet(np.random.default_rng(0).random((1, 32, config.stft.bins, 2), dtype=np.float32))
    assert {head: mask.dtype for head, mask in masks.items()} == {"vocals": tf.float32, "drums": tf.float32}
    row = read_history(str(tmp_path / "model.work" / "checkpoints" / HISTORY_FILE))[-1]
    assert np.isfinite([row["loss"], row["val_loss"], row["val_sdr"]]).all()

    model, _ = network.build_training_model(config, "mixed_float16")
    network.compile_model(model, config, 10, "mixed_float16")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert all(output.dtype == "float32" for output in model.outputs)  # the loss sees float32 estimates

    publish.publish(run, config, dirs, {"description": "", "location": data, "info": read_dataset_info(data)})
    loaded = tf.saved_model.load(str(tmp_path / "model" / "saved_model"))
    graph = loaded.signatures["serving_default"].graph.as_graph_def()
    functions = [node for function in graph.library.function for node in function.node_def]
    half = [node.name for node in [*graph.node, *functions] if any(
        value.type == tf.float16.as_datatype_enum for value in node.attr.values())]
    assert not half, half[:5]  # the export is all float32: CPU workers never run float16 convolutions
    separator = Separator.load(tmp_path / "model")
    mix = (0.3 * np.sin(np.arange(8000) / 7.0)[:, None] * np.ones((1, 2))).astype(np.float32)
    stems = separator.separate(mix, 11025)
    assert all(stem.dtype == np.float32 and np.isfinite(stem).all() for stem in stems.values())
