"""The tf.data input on tiny on-disk shards: shapes, remixing, determinism of validation, padding."""
from __future__ import annotations

import numpy as np
import pytest

from tests.trainer.records import write_dataset


@pytest.fixture
def data_dir(tmp_path, tiny_config):
    return write_dataset(tmp_path / "data", tiny_config, {"train": 6, "valid": 3})


def test_training_batches_are_whole_patches_of_magnitudes(data_dir, tiny_config):
    from trainer import data

    inputs, targets = next(iter(data.training_dataset(str(data_dir), tiny_config)))
    shape = (tiny_config.training.batch_size, tiny_config.network.patch_frames, tiny_config.stft.bins,
             tiny_config.audio.channels)
    assert inputs.shape == shape
    assert sorted(targets) == sorted(tiny_config.network.heads)
    assert all(target.shape == shape for target in targets.values())
    assert np.all(inputs.numpy() >= 0) and np.isfinite(inputs.numpy()).all()


@pytest.mark.parametrize("heads", [("vocals", "drums"), ("vocals",), ("drums", "bass", "other", "vocals")])
def test_remix_uses_every_stem_of_every_patch_once_and_mixes_patches(heads):
    from model.config import STEM_NAMES
    from trainer.data import _remix_indices

    indices = _remix_indices(heads)  # [example, source, (patch, source)]
    group = len(heads) + 1
    for source in range(len(STEM_NAMES)):
        assert sorted(indices[:, source, 0]) == list(range(group))
        assert list(indices[:, source, 1]) == [source] * group
    for example in indices:
        head_patches = [example[STEM_NAMES.index(head), 0] for head in heads]
        rest = {example[s, 0] for s, name in enumerate(STEM_NAMES) if name not in heads}
        assert len(set(head_patches)) == len(heads) and not rest & set(head_patches)


@pytest.mark.parametrize("probability", [0.0, 0.5, 1.0])
def test_remix_probability_is_the_share_of_remixed_groups(probability):
    import tensorflow as tf

    from trainer.data import _maybe_remix, _remix

    heads = ("vocals", "drums")
    # three patches whose four sources each hold their own patch's number
    patches = tf.broadcast_to(tf.range(3, dtype=tf.float32)[:, None, None, None], [3, 4, 5, 2])
    remixed = _remix(patches, heads).numpy()
    outcomes = [_maybe_remix(patches, heads, probability).numpy() for _ in range(1000)]
    kept = sum(np.array_equal(outcome, patches.numpy()) for outcome in outcomes)
    assert kept + sum(np.array_equal(outcome, remixed) for outcome in outcomes) == len(outcomes)
    assert abs(kept / len(outcomes) - (1 - probability)) < 0.07  # over 4 standard deviations at 0.5


def test_augmented_mixture_is_the_sum_of_gained_sources():
    import tensorflow as tf

    from trainer.data import GAIN_RANGE, _augment, _with_mixture

    sources = tf.random.uniform([4, 100, 2], 0.5, 1.0, seed=1)
    stems = _with_mixture(_augment(sources)).numpy()
    np.testing.assert_allclose(stems[0], stems[1:].sum(axis=0), rtol=1e-5)
    # each source is the original, or its channels swapped, times one gain in range
    for original, augmented in zip(sources.numpy(), stems[1:]):
        ratios = [augmented / candidate for candidate in (original, original[:, ::-1])]
        gains = [ratio.mean() for ratio in ratios if np.ptp(ratio) < 1e-4]
        assert gains and GAIN_RANGE[0] <= gains[0] <= GAIN_RANGE[1]


RECORDS_RATE = 44100


def _tone(frequency: float, samples: int) -> np.ndarray:
    return np.sin(2 * np.pi * frequency * np.arange(samples) / RECORDS_RATE).astype(np.float32)


def _spectrum(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and magnitudes of a Hann-windowed wave at the records' rate."""
    return (np.fft.rfftfreq(len(wave), 1 / RECORDS_RATE),
            np.abs(np.fft.rfft(wave * np.hanning(len(wave)))))


@pytest.mark.parametrize("frequency", [300.0, 3000.0, 5000.0])
@pytest.mark.parametrize("semitones", [-2.0, 1.0, 2.0])
def test_play_at_speed_moves_every_frequency_and_keeps_the_models_band_clean(frequency, semitones):
    import tensorflow as tf

    from trainer.data import play_at_speed

    segment, ratio = 32768, 2 ** (semitones / 12)
    tone = _tone(frequency, int(np.ceil(segment * ratio)) + 1)
    played = play_at_speed(tf.constant(tone[None, :, None]), tf.constant(ratio), segment).numpy()[0, :, 0]
    frequencies, magnitude = _spectrum(played)
    peak = np.argmax(magnitude)
    assert abs(frequencies[peak] - frequency * ratio) <= RECORDS_RATE / segment
    _, reference = _spectrum(_tone(frequency * ratio, segment))
    assert abs(20 * np.log10(magnitude[peak] / reference.max())) < 0.5  # the interpolation's droop
    band = (frequencies < 5512.5) & (np.abs(frequencies - frequencies[peak]) > 50)
    assert 20 * np.log10(magnitude[band].max() / magnitude[peak]) < -30  # its images in the model's band


def test_speed_crops_play_all_stems_of_a_patch_at_one_random_speed_within_range():
    import tensorflow as tf

    from trainer.data import _random_speed_crop

    frequency, segment, semitones = 1000.0, 16384, 2.0
    tone = _tone(frequency, 3 * segment)
    stems = tf.constant(np.stack([tone, 0.5 * tone])[:, :, None])
    peaks = []
    for _ in range(12):
        crop = _random_speed_crop(stems, segment, semitones).numpy()
        assert crop.shape == (2, segment, 1)
        np.testing.assert_allclose(crop[1], 0.5 * crop[0], atol=1e-6)  # same offset, same speed
        frequencies, magnitude = _spectrum(crop[0, :, 0])
        peaks.append(frequencies[np.argmax(magnitude)])
    slack = RECORDS_RATE / segment
    assert min(peaks) >= frequency * 2 ** (-semitones / 12) - slack
    assert max(peaks) <= frequency * 2 ** (semitones / 12) + slack
    assert max(peaks) - min(peaks) > 4 * slack  # the speed changes from crop to crop


def test_training_batches_take_the_configured_speed_range(tmp_path, tiny_config):
    import tensorflow as tf

    from model.config import STEM_NAMES
    from model.records import encode_patch
    from trainer import data

    frequency, samples = 1000.0, int(tiny_config.data.patch_seconds * RECORDS_RATE)
    (tmp_path / "train").mkdir()
    with tf.io.TFRecordWriter(str(tmp_path / "train" / "train-00000-of-00001.tfrecord")) as writer:
        stems = {name: np.stack([_tone(frequency, samples)] * 2, axis=1) for name in STEM_NAMES}
        for number in range(4):
            writer.write(encode_patch(f"track{number}", "train", 0, RECORDS_RATE,
                                      {"mixture": sum(stems.values()), **stems}))

    def vocals_peaks(config) -> list[float]:
        batch = next(iter(data.training_waveforms(str(tmp_path), config))).numpy()
        vocals = batch[:, data.STEMS.index("vocals"), :, 0]
        return [frequencies[np.argmax(magnitude)] for frequencies, magnitude in map(_spectrum, vocals)]

    slack = RECORDS_RATE / data.segment_samples(tiny_config)
    config = tiny_config.replace(training__batch_size=16)
    assert all(abs(peak - frequency) <= slack for peak in vocals_peaks(config))
    peaks = vocals_peaks(config.replace(training__speed_semitones=2.0))
    assert max(peaks) - min(peaks) > 4 * slack
    assert frequency * 2 ** (-2 / 12) - slack <= min(peaks) and max(peaks) <= frequency * 2 ** (2 / 12) + slack


def test_validation_is_fixed_crops_of_the_real_mixture(data_dir, tiny_config):
    import tensorflow as tf

    from model.frontend import records_rate, training_front_end
    from model.records import decode_patch
    from model.unet import magnitude
    from trainer import data

    first, second = ([x.numpy() for x, _ in data.validation_dataset(str(data_dir), tiny_config)] for _ in range(2))
    crops_per_patch = int(tiny_config.data.patch_seconds * records_rate(tiny_config)) // data.segment_samples(
        tiny_config)
    assert sum(len(batch) for batch in first) == 3 * crops_per_patch
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    shard = data.find_shards(str(data_dir), "valid")[0]
    record = next(iter(tf.data.TFRecordDataset(shard, "GZIP"))).numpy()
    mixture = decode_patch(record)["stems"]["mixture"][: data.segment_samples(tiny_config)]
    expected = magnitude(tf.constant(mixture[None]), training_front_end(tiny_config)).numpy()[0]
    np.testing.assert_allclose(first[0][0], expected, rtol=1e-4, atol=1e-4)


def test_patches_shorter_than_a_segment_are_padded(tmp_path, tiny_config):
    from trainer import data

    short = write_dataset(tmp_path / "short", tiny_config, {"train": 3, "valid": 2}, samples=3000)
    inputs, _ = next(iter(data.training_dataset(str(short), tiny_config)))
    assert inputs.shape[1] == tiny_config.network.patch_frames
    valid = [x.numpy() for x, _ in data.validation_dataset(str(short), tiny_config)]
    assert sum(len(batch) for batch in valid) == 2  # one padded crop per patch


def test_missing_split_has_no_validation_and_missing_train_is_an_error(tmp_path, tiny_config):
    from trainer import data

    only_valid = write_dataset(tmp_path / "v", tiny_config, {"valid": 1})
    assert data.validation_dataset(str(tmp_path / "v"), tiny_config, split="test") is None
    with pytest.raises(FileNotFoundError, match="train"):
        data.training_dataset(str(only_valid), tiny_config)


def test_phase_sensitive_targets_are_the_in_phase_share_and_sum_to_the_mixture(data_dir, tiny_config):
    """A stem in phase with the mixture keeps its magnitude, one in antiphase turns negative, and the
    targets of the heads and the residual add up to the mixture's magnitude, as the softmax masks do."""
    import tensorflow as tf

    from model.frontend import training_front_end
    from model.unet import band_spectrum, magnitude
    from trainer import data

    front = training_front_end(tiny_config)
    rng = np.random.default_rng(0)
    stem = tf.constant(rng.standard_normal((1, 4096, 2)), tf.float32)
    mixture_spectrum = band_spectrum(3 * stem, front)
    np.testing.assert_allclose(data.phase_sensitive_magnitude(stem, mixture_spectrum, front), magnitude(stem, front),
                               rtol=1e-4, atol=1e-6)
    assert (data.phase_sensitive_magnitude(-stem, mixture_spectrum, front).numpy() < 0).all()

    config = tiny_config.replace(training__phase_sensitive_target=True, training__residual_loss=True)
    inputs, targets = next(iter(data.training_dataset(str(data_dir), config)))
    np.testing.assert_allclose(sum(targets.values()), inputs, atol=1e-4 * float(np.max(inputs)))
