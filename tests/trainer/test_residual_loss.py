"""training.residual_loss: the residual's estimate is the mix times what the heads' masks leave, its target
the magnitude of the other stems' sum, and training reports its loss."""
from __future__ import annotations

import numpy as np

from tests.trainer.records import write_dataset


def test_residual_targets_are_the_other_stems_and_its_estimate_what_the_heads_leave(tmp_path, tiny_config):
    import tensorflow as tf

    from model.records import decode_patch
    from model.frontend import training_front_end
    from model.unet import magnitude
    from trainer import data, network

    config = tiny_config.replace(training__residual_loss=True)
    data_dir = write_dataset(tmp_path / "data", config, {"train": 4, "valid": 2})
    inputs, targets = next(iter(data.validation_dataset(str(data_dir), config)))
    assert sorted(targets) == ["drums", "residual", "vocals"]
    shard = data.find_shards(str(data_dir), "valid")[0]
    stems = decode_patch(next(iter(tf.data.TFRecordDataset(shard, "GZIP"))).numpy())["stems"]
    rest = (stems["bass"] + stems["other"])[: data.segment_samples(config)]
    expected = magnitude(tf.constant(rest[None]), training_front_end(config)).numpy()[0]
    np.testing.assert_allclose(targets["residual"].numpy()[0], expected, rtol=1e-4, atol=1e-4)

    model, unet = network.build_training_model(config)
    estimates, masks = model(inputs), unet(inputs)
    leftover = 1.0 - masks["vocals"].numpy() - masks["drums"].numpy()
    np.testing.assert_allclose(estimates["residual"].numpy(), leftover * inputs.numpy(), rtol=1e-4, atol=1e-5)

    plain, _ = network.build_training_model(tiny_config)
    assert "residual" not in plain.output_names


def test_training_with_the_residual_loss_logs_it(tmp_path, tiny_config):
    from reports.training import HISTORY_FILE
    from trainer import paths, training
    from trainer.history import read_history

    config = tiny_config.replace(training__residual_loss=True, training__steps_per_epoch=1)
    data_dir = write_dataset(tmp_path / "data", config, {"train": 4, "valid": 2})
    training.train(str(data_dir), config, paths.resolve_dirs(str(tmp_path / "model"), None, None))
    row = read_history(str(tmp_path / "model.work" / "checkpoints" / HISTORY_FILE))[-1]
    assert np.isfinite([row["residual_loss"], row["val_residual_loss"]]).all()
    # the total is the sum of the three losses: the residual's is trained, not only reported
    np.testing.assert_allclose(row["val_loss"], row["val_vocals_loss"] + row["val_drums_loss"]
                               + row["val_residual_loss"], rtol=1e-4)
