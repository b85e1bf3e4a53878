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
