"""The spectrogram-mask U-Net (Jansson et al. 2017, as in Spleeter) and the front end in TensorFlow.

Input  magnitude [batch, frames, bins, channels]: model/frontend.py's network input.
Output one ratio mask per head, same shape; a softmax over heads plus the residual makes the
masks of all stems sum to one in every bin.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from model.config import Config, StftConfig
from model.frontend import FrontEnd


def complex_stft(waveform: tf.Tensor, stft: StftConfig) -> tf.Tensor:
    """[batch, samples, channels] -> complex [batch, channels, frames, n_fft // 2 + 1], framed like
    dsp.stft (centred: n_fft // 2 zeros each side)."""
    pad = stft.n_fft // 2
    signal = tf.pad(tf.transpose(waveform, [0, 2, 1]), [[0, 0], [0, 0], [pad, pad]])
    return tf.signal.stft(signal, frame_length=stft.n_fft, frame_step=stft.hop, fft_length=stft.n_fft,
                          window_fn=tf.signal.hann_window, pad_end=False)


def band_spectrum(waveform: tf.Tensor, front: FrontEnd) -> tf.Tensor:
    """[batch, samples, channels] at `front.rate` -> the complex STFT's bins the network sees
    [batch, channels, frames, bins]."""
    return complex_stft(waveform, front.stft)[..., : front.bins]


def network_layout(band: tf.Tensor, front: FrontEnd) -> tf.Tensor:
    """Real values on `band_spectrum`'s bins -> the network's layout and scale [batch, frames, bins, channels]."""
    return tf.transpose(band / front.factor, [0, 2, 3, 1])


def magnitude(waveform: tf.Tensor, front: FrontEnd) -> tf.Tensor:
    """[batch, samples, channels] at `front.rate` -> the network's input [batch, frames, bins, channels]:
    FrontEnd.network_input of dsp.stft's spectrogram, in TensorFlow (the tf.data pipeline's graph)."""
    return network_layout(tf.abs(band_spectrum(waveform, front)), front)


def build_unet(config: Config) -> keras.Model:
    """Build the mask network for `config.network.heads`; its outputs are named after the heads."""
    net = config.network
    channels = config.audio.channels
    stems = len(net.heads) + 1  # the heads and the residual
    inputs = keras.Input(shape=(None, config.stft.bins, channels), name="magnitude")
    # per-bin normalisation: the high bins are orders of magnitude weaker than the low ones, and a
    # per-channel scale would leave them near zero for the first convolution
    x = layers.BatchNormalization(axis=2, name="input_norm")(inputs)
    skips = []
    for level, filters in enumerate(net.filters):
        x = layers.Conv2D(filters, net.kernel, strides=2, padding="same", name=f"enc{level}_conv")(x)
        x = layers.BatchNormalization(name=f"enc{level}_bn")(x)
        x = layers.LeakyReLU(0.2, name=f"enc{level}_act")(x)
        skips.append(x)
    for level in reversed(range(len(net.filters))):
        if level != len(net.filters) - 1:
            x = layers.Concatenate(name=f"dec{level}_skip")([x, skips[level]])
        filters = net.filters[level - 1] if level > 0 else net.filters[0]
        x = layers.Conv2DTranspose(filters, net.kernel, strides=2, padding="same", name=f"dec{level}_deconv")(x)
        x = layers.BatchNormalization(name=f"dec{level}_bn")(x)
        x = layers.ReLU(name=f"dec{level}_act")(x)
        if level >= len(net.filters) - 3 and net.dropout > 0:
            x = layers.Dropout(net.dropout, name=f"dec{level}_dropout")(x)
    logits = layers.Conv2D(channels * stems, 3, padding="same", name="mask_logits")(x)
    logits = layers.Reshape((-1, config.stft.bins, channels, stems), name="per_stem")(logits)
    masks = layers.Softmax(axis=-1, name="stem_softmax")(logits)
    outputs = {head: layers.Lambda(lambda m, i=index: m[..., i], name=head)(masks)
               for index, head in enumerate(net.heads)}
    return keras.Model(inputs, outputs, name="unet")
