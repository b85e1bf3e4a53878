import numpy as np


def _magnitudes(config, frames: int = 32, batch: int = 4) -> np.ndarray:
    """Spectrogram-like input tilted by 40 dB: the lowest bins ~30, the highest ~0.3 (a spread above
    BatchNormalization's epsilon of 1e-3 in variance, which floors quieter bins)."""
    rng = np.random.default_rng(0)
    bins = config.stft.bins
    level = 30.0 * 10.0 ** (-2.0 * np.arange(bins) / bins)
    noise = rng.uniform(0.5, 1.5, (batch, frames, bins, config.audio.channels))
    return (noise * level[None, None, :, None]).astype(np.float32)


def test_masks_have_the_input_shape_and_sum_to_at_most_one(tiny_config):
    import keras

    from model.unet import build_unet

    keras.utils.set_random_seed(0)
    magnitude = _magnitudes(tiny_config)
    masks = build_unet(tiny_config)(magnitude, training=False)
    assert sorted(masks) == sorted(tiny_config.network.heads)
    heads = sum(np.asarray(mask) for mask in masks.values())
    assert all(np.asarray(mask).shape == magnitude.shape for mask in masks.values())
    # one softmax over the heads and the residual: what the heads leave is the residual's
    assert all(np.asarray(mask).min() >= 0 for mask in masks.values())
    assert heads.max() <= 1 + 1e-6 and heads.min() < 1


def test_input_is_normalised_per_frequency_bin(tiny_config):
    import keras

    from model.unet import build_unet

    unet = build_unet(tiny_config)
    norm = unet.get_layer("input_norm")
    normalised = keras.Model(unet.input, norm.output)(_magnitudes(tiny_config), training=True)
    per_bin = np.asarray(normalised).std(axis=(0, 1, 3))
    # the top bins, 40 dB down, reach the first convolution at the same scale as the bottom ones
    assert norm.gamma.shape == (tiny_config.stft.bins,)
    np.testing.assert_allclose(per_bin, 1.0, rtol=0.1)
