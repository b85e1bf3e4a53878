"""training.loss: each head's loss is the mean absolute (l1) or squared (l2) error of its estimate."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("loss, error", [("l1", np.abs), ("l2", np.square)])
def test_the_configured_loss_is_what_training_minimises(tiny_config, loss, error):
    from trainer import network

    config = tiny_config.replace(training__loss=loss)
    model, _ = network.build_training_model(config)
    network.compile_model(model, config, total_steps=1)
    rng = np.random.default_rng(0)
    shape = (2, config.network.patch_frames, config.stft.bins, config.audio.channels)
    inputs = rng.random(shape).astype(np.float32)
    targets = {head: rng.random(shape).astype(np.float32) for head in config.network.heads}

    logs = model.evaluate(inputs, targets, verbose=0, return_dict=True)

    estimates = model.predict(inputs, verbose=0)
    for head in config.network.heads:
        assert logs[f"{head}_loss"] == pytest.approx(float(np.mean(error(estimates[head] - targets[head]))), rel=1e-4)


def test_an_unknown_loss_is_refused(tiny_config):
    from trainer import network

    config = tiny_config.replace(training__loss="huber")
    model, _ = network.build_training_model(config)
    with pytest.raises(ValueError, match="training.loss 'huber'"):
        network.compile_model(model, config, total_steps=1)
