"""The training model: the U-Net's masks times the mix magnitude, one loss per head, L1 or L2 (and, with
`training.residual_loss`, one on the residual: the mix times what the heads' masks leave), and its optimizer.

Keras names each loss after its head (vocals_loss, drums_loss, val_vocals_loss, ...). The U-Net
inside is what gets exported; the wrapper only exists for training.

Precision: "mixed_float16" computes the U-Net's convolutions in float16 with float32 weights (tensor
cores on a GPU) and scales the loss against float16 underflow; the input's per-bin normalisation, the
masks' softmax and the masks themselves stay float32, so the estimates and the loss are float32. "auto"
picks it only when TensorFlow sees a GPU: CPUs gain nothing from float16. Exports are always float32.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import keras

from model.config import RESIDUAL, Config
from model.unet import build_unet

FINAL_LEARNING_RATE = 0.05  # the cosine schedule ends at this fraction of the initial rate
PRECISIONS = ("auto", "float32", "mixed_float16")
FLOAT32_LAYERS = ("input_norm", "stem_softmax")  # and the heads: numerically sensitive ends of the U-Net


def resolve_precision(name: str) -> str:
    """"auto" -> "mixed_float16" when a GPU is visible, else "float32"; other names pass unchanged."""
    if name not in PRECISIONS:
        raise ValueError(f"precision {name!r} is not one of {', '.join(PRECISIONS)}")
    if name != "auto":
        return name
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Keras's global dtype policy for the layers built inside; the previous one comes back after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_mask_network(config: Config, precision: str = "float32") -> keras.Model:
    """The U-Net at `precision` (float32 or mixed_float16; see the module docstring)."""
    if precision == "float32":
        return build_unet(config)
    with dtype_policy(precision):
        unet = build_unet(config)
    for name in (*FLOAT32_LAYERS, *config.network.heads):
        unet.get_layer(name).dtype_policy = "float32"  # applied when the layer runs: its inputs are cast up
    return unet


def float32_copy(unet: keras.Model, config: Config) -> keras.Model:
    """The same weights in an all-float32 U-Net (the weights are float32 either way): what is exported, so
    CPU workers never run float16 convolutions."""
    if unet.dtype_policy.name == "float32":
        return unet
    copy = build_unet(config)
    copy.set_weights(unet.get_weights())
    return copy


def trained_stems(config: Config) -> tuple[str, ...]:
    """The estimates the loss is taken on: the heads, and the residual when `training.residual_loss`."""
    return (*config.network.heads, RESIDUAL) if config.training.residual_loss else config.network.heads


def build_training_model(config: Config, precision: str = "float32") -> tuple[keras.Model, keras.Model]:
    """Return (trainable wrapper, mask U-Net); they share every weight. The wrapper is float32."""
    unet = build_mask_network(config, precision)
    mix = keras.Input(shape=(None, config.stft.bins, config.audio.channels), name="magnitude")
    masks = unet(mix)
    estimates = {head: keras.layers.Multiply(name=head)([masks[head], mix]) for head in config.network.heads}
    if config.training.residual_loss:
        # the softmax's residual share, 1 - the heads' masks: what the separator's residual stem gets
        leftover = keras.layers.Lambda(lambda heads: 1.0 - keras.ops.sum(keras.ops.stack(heads), axis=0),
                                       name="residual_mask")([masks[head] for head in config.network.heads])
        estimates[RESIDUAL] = keras.layers.Multiply(name=RESIDUAL)([leftover, mix])
    return keras.Model(mix, estimates, name="separator_training"), unet


LOSSES = {"l1": "mean_absolute_error", "l2": "mean_squared_error"}  # training.loss -> Keras's name


def compile_model(model: keras.Model, config: Config, total_steps: int, precision: str = "float32") -> None:
    """Adam with `training.loss` per head, on the configured learning-rate schedule; under mixed
    precision the loss is scaled dynamically (Keras's LossScaleOptimizer)."""
    if config.training.loss not in LOSSES:
        raise ValueError(f"training.loss {config.training.loss!r}: expected one of {sorted(LOSSES)}")
    optimizer = keras.optimizers.Adam(learning_rate_schedule(config, total_steps))
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss={stem: LOSSES[config.training.loss] for stem in trained_stems(config)})


def learning_rate_schedule(config: Config, total_steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """Halving every `lr_half_life_steps` steps when set; else a cosine decay over `total_steps`."""
    training = config.training
    if training.lr_half_life_steps > 0:
        return keras.optimizers.schedules.ExponentialDecay(
            training.learning_rate, decay_steps=training.lr_half_life_steps, decay_rate=0.5)
    return keras.optimizers.schedules.CosineDecay(
        training.learning_rate, decay_steps=max(1, total_steps), alpha=FINAL_LEARNING_RATE)
