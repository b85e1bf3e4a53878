"""The training model: the U-Net's masks times the mix magnitude, one L1 loss per head, and its optimizer.

Keras names each loss after its head (vocals_loss, drums_loss, val_vocals_loss, ...). The U-Net
inside is what gets exported; the wrapper only exists for training.
"""
from __future__ import annotations

import keras

from model.config import Config
from model.unet import build_unet

FINAL_LEARNING_RATE = 0.05  # the cosine schedule ends at this fraction of the initial rate


def build_training_model(config: Config) -> tuple[keras.Model, keras.Model]:
    """Return (trainable wrapper, mask U-Net); they share every weight."""
    unet = build_unet(config)
    mix = keras.Input(shape=(None, config.stft.bins, config.audio.channels), name="magnitude")
    masks = unet(mix)
    estimates = {head: keras.layers.Multiply(name=head)([masks[head], mix]) for head in config.network.heads}
    return keras.Model(mix, estimates, name="separator_training"), unet


def compile_model(model: keras.Model, config: Config, total_steps: int) -> None:
    """Adam with mean absolute error per head, on the configured learning-rate schedule."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate_schedule(config, total_steps)),
                  loss={head: "mean_absolute_error" for head in config.network.heads})


def learning_rate_schedule(config: Config, total_steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """Halving every `lr_half_life_steps` steps when set; else a cosine decay over `total_steps`."""
    training = config.training
    if training.lr_half_life_steps > 0:
        return keras.optimizers.schedules.ExponentialDecay(
            training.learning_rate, decay_steps=training.lr_half_life_steps, decay_rate=0.5)
    return keras.optimizers.schedules.CosineDecay(
        training.learning_rate, decay_steps=max(1, total_steps), alpha=FINAL_LEARNING_RATE)
