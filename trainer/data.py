"""tf.data input: TFRecord patches -> (mix magnitude, {head: stem magnitude}) batches.

Shards are `DATA/<split>/*.tfrecord` or `*.tfrecord.gz`, waveforms at the records' rate
(model/frontend.py). Every example is a segment of `(patch_frames - 1) * hop` samples at that rate (the hop
scaled with it), so its centred STFT has exactly `patch_frames` frames; the network's input and targets are
the front end's magnitudes of the mixture and of each head's stem.
Training crops at random, optionally at a random speed, and remixes stems across patches (new mixes the
network has never heard; with `training.remix_probability` below 1, only that share of the groups of patches,
the others keep each song's stems together); validation takes fixed crops of the real mixtures, the same every
epoch.
With `training.residual_loss` the targets also hold the residual: the magnitude of the other stems' sum.
With `training.phase_sensitive_target` every target is the part of its stem's magnitude in phase with the mixture.
Shapes: stems [stems, samples, channels] per patch; magnitudes [batch, frames, bins, channels].
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from common import storage
from model.config import MIXTURE, RESIDUAL, STEM_NAMES, Config
from model.frontend import FrontEnd, training_front_end
from model.records import parse_patch
from model.unet import band_spectrum, magnitude, network_layout

AUTOTUNE = tf.data.AUTOTUNE
STEMS = (MIXTURE, *STEM_NAMES)  # the order of the stacked stem axis
SHUFFLE_BUFFER = 256  # serialized patches (~5.3 MB each at the default 6 s, 44.1 kHz, stereo)
READ_BUFFER = 4 << 20  # bytes per open shard; large reads matter on gs://
GAIN_RANGE = (0.25, 1.25)


def segment_samples(config: Config) -> int:
    return (config.network.patch_frames - 1) * training_front_end(config).stft.hop


def find_shards(data_dir: str, split: str) -> list[str]:
    return sorted(tf.io.gfile.glob(storage.join(data_dir, split, "*.tfrecord*")))


def training_dataset(data_dir: str, config: Config, split: str = "train") -> tf.data.Dataset:
    """Endless shuffled, remixed, augmented batches of `config.training.batch_size`."""
    return _features(training_waveforms(data_dir, config, split), config)


def training_waveforms(data_dir: str, config: Config, split: str = "train") -> tf.data.Dataset:
    """The same batches as waveforms [batch, stems, segment, channels] (STEMS order, mixture first)."""
    files = _require_shards(data_dir, split)
    heads = _check_heads(config)
    segment, channels = segment_samples(config), config.audio.channels
    semitones = config.training.speed_semitones
    crop = ((lambda stems: _random_speed_crop(stems, segment, semitones)) if semitones
            else (lambda stems: _random_crop(stems, segment)))
    sources = (_records(files, training=True)
               .shuffle(SHUFFLE_BUFFER)
               .map(lambda record: _parse(record, STEM_NAMES, channels), num_parallel_calls=AUTOTUNE)
               .map(crop, num_parallel_calls=AUTOTUNE))
    group = len(heads) + 1  # one patch per head and one for the rest
    examples = (sources.batch(group, drop_remainder=True)
                .map(lambda patches: _maybe_remix(patches, heads, config.training.remix_probability),
                     num_parallel_calls=AUTOTUNE)
                .unbatch()
                .map(_augment, num_parallel_calls=AUTOTUNE)
                .map(_with_mixture, num_parallel_calls=AUTOTUNE))
    return examples.batch(config.training.batch_size, drop_remainder=True)


def validation_dataset(data_dir: str, config: Config, split: str = "valid") -> tf.data.Dataset | None:
    """The split's real mixtures in fixed, non-overlapping crops; None when the split has no records."""
    crops = validation_crops(data_dir, config, split)
    return _features(crops, config) if crops is not None else None


def validation_crops(data_dir: str, config: Config, split: str = "valid") -> tf.data.Dataset | None:
    """Batches [batch, stems, segment, channels] (STEMS order) of the split's fixed crops; None if empty."""
    files = find_shards(data_dir, split)
    if not files:
        return None
    _check_heads(config)
    segment, channels = segment_samples(config), config.audio.channels
    crops = _count_crops(files, segment)
    if not crops:
        return None
    examples = (_records(files, training=False)
                .map(lambda record: _parse(record, STEMS, channels), num_parallel_calls=AUTOTUNE)
                .map(lambda stems: _fixed_crops(stems, segment), num_parallel_calls=AUTOTUNE)
                .unbatch())
    batch = config.training.batch_size
    # Keras 3.15 miscounts per-head losses (val_vocals_loss, ...) on datasets of unknown length
    batches = -(-crops // batch)
    return examples.batch(batch).apply(tf.data.experimental.assert_cardinality(batches)).cache()


def _require_shards(data_dir: str, split: str) -> list[str]:
    files = find_shards(data_dir, split)
    if not files:
        raise FileNotFoundError(f"no shards match {storage.join(data_dir, split, '*.tfrecord*')}")
    return files


def _check_heads(config: Config) -> tuple[str, ...]:
    unknown = set(config.network.heads) - set(STEM_NAMES)
    if unknown:
        raise ValueError(f"heads {sorted(unknown)} are not stems of the records {STEM_NAMES}")
    return config.network.heads


def _records(files: list[str], training: bool) -> tf.data.Dataset:
    """Serialized patches from all shards, read in parallel; GZIP shards are told apart by suffix."""
    compression = ["GZIP" if name.endswith(".gz") else "" for name in files]
    shards = tf.data.Dataset.from_tensor_slices((files, compression))
    if training:
        shards = shards.shuffle(len(files)).repeat()
    return shards.interleave(
        lambda name, kind: tf.data.TFRecordDataset(name, kind, buffer_size=READ_BUFFER),
        cycle_length=min(len(files), 8), num_parallel_calls=AUTOTUNE, deterministic=not training)


def _parse(record: tf.Tensor, names: tuple[str, ...], channels: int) -> tf.Tensor:
    parsed = parse_patch(record, names, channels)
    return tf.stack([parsed[name] for name in names])


def _pad_to(stems: tf.Tensor, segment: int | tf.Tensor) -> tf.Tensor:
    short = tf.maximum(segment - tf.shape(stems)[1], 0)
    return tf.pad(stems, [[0, 0], [0, short], [0, 0]])


def _random_crop(stems: tf.Tensor, length: int | tf.Tensor) -> tf.Tensor:
    """One random segment of `length` samples, at the same offset in every stem."""
    return tf.image.random_crop(_pad_to(stems, length), [stems.shape[0], length, stems.shape[2]])


def _random_speed_crop(stems: tf.Tensor, segment: int, semitones: float) -> tf.Tensor:
    """One random segment played at a random speed within +-`semitones`, the same in every stem."""
    ratio = 2.0 ** (tf.random.uniform([], -semitones, semitones) / 12.0)
    window = _random_crop(stems, tf.cast(tf.math.ceil(segment * ratio), tf.int32) + 1)
    return play_at_speed(window, ratio, segment)


def play_at_speed(stems: tf.Tensor, ratio: tf.Tensor, segment: int) -> tf.Tensor:
    """[stems, samples, channels] played `ratio` times faster, `segment` samples long: every frequency
    times `ratio`. Needs ceil(segment x ratio) + 1 samples. Linear interpolation: at the records' 44.1 kHz
    its images land in the model's band (under 5.5 kHz) at least 30 dB down, and its droop there is
    under 0.5 dB (tests/trainer/test_data.py). Written here because a tf.data map needs graph ops and
    TensorFlow has no resampler of arbitrary ratio; soxr through tf.numpy_function would hold the GIL
    inside the parallel input pipeline."""
    positions = tf.range(segment, dtype=tf.float32) * tf.cast(ratio, tf.float32)
    left = tf.cast(tf.floor(positions), tf.int32)
    fraction = (positions - tf.cast(left, tf.float32))[None, :, None]
    before, after = tf.gather(stems, left, axis=1), tf.gather(stems, left + 1, axis=1)
    played = before + fraction * (after - before)
    return tf.ensure_shape(played, [stems.shape[0], segment, stems.shape[2]])


def _fixed_crops(stems: tf.Tensor, segment: int) -> tf.Tensor:
    """[stems, samples, channels] -> [crops, stems, segment, channels], back to back from the start."""
    stems = _pad_to(stems, segment)
    crops = tf.shape(stems)[1] // segment
    tiled = tf.reshape(stems[:, : crops * segment], [stems.shape[0], crops, segment, stems.shape[2]])
    return tf.transpose(tiled, [1, 0, 2, 3])


def _count_crops(files: list[str], segment: int) -> int:
    """How many crops `_fixed_crops` makes of the split, from the records' `samples` field alone."""
    spec = {"samples": tf.io.FixedLenFeature([], tf.int64)}

    def crops(record: tf.Tensor) -> tf.Tensor:
        return tf.maximum(tf.io.parse_single_example(record, spec)["samples"], segment) // segment

    counts = _records(files, training=False).map(crops, num_parallel_calls=AUTOTUNE)
    return int(counts.reduce(tf.constant(0, tf.int64), lambda total, count: total + count))


def _remix_indices(heads: tuple[str, ...]) -> np.ndarray:
    """[group, sources, 2] gather indices: in example j, head i comes from patch (i + j) % group and
    the other sources from patch (len(heads) + j) % group, so every stem of every patch is used once."""
    group = len(heads) + 1
    roles = [heads.index(name) if name in heads else len(heads) for name in STEM_NAMES]
    return np.array([[[(role + j) % group, source] for source, role in enumerate(roles)]
                     for j in range(group)], dtype=np.int32)


def _remix(patches: tf.Tensor, heads: tuple[str, ...]) -> tf.Tensor:
    """[group, sources, segment, channels] from as many patches -> as many new combinations."""
    return tf.gather_nd(patches, _remix_indices(heads))


def _maybe_remix(patches: tf.Tensor, heads: tuple[str, ...], probability: float) -> tf.Tensor:
    """`_remix` with `probability`, else the patches as they are (each one song's stems)."""
    if probability >= 1:
        return _remix(patches, heads)
    return tf.cond(tf.random.uniform([]) < probability, lambda: _remix(patches, heads), lambda: patches)


def _augment(sources: tf.Tensor) -> tf.Tensor:
    """A random gain per source, and each source's channels swapped with probability 1/2."""
    count = sources.shape[0]
    gains = tf.random.uniform([count, 1, 1], *GAIN_RANGE)
    swap = tf.random.uniform([count, 1, 1]) < 0.5
    return tf.where(swap, tf.reverse(sources, axis=[-1]), sources) * gains


def _with_mixture(sources: tf.Tensor) -> tf.Tensor:
    """Prepend the mixture, rebuilt as the sum of the (augmented) sources: the STEMS order."""
    return tf.concat([tf.reduce_sum(sources, axis=0, keepdims=True), sources], axis=0)


def phase_sensitive_magnitude(source: tf.Tensor, mixture_spectrum: tf.Tensor, front: FrontEnd) -> tf.Tensor:
    """A stem [batch, samples, channels] and its mixture's `band_spectrum` -> |S| cos(phase S - phase X) in the
    network's input layout and scale: Re(S conj X) / |X|, negative where the stem opposes the mixture's phase."""
    source_spec = band_spectrum(source, front)
    in_phase = (tf.math.real(source_spec * tf.math.conj(mixture_spectrum))
                / tf.maximum(tf.abs(mixture_spectrum), 1e-12))
    return network_layout(in_phase, front)


def _features(batches: tf.data.Dataset, config: Config) -> tf.data.Dataset:
    heads, front = config.network.heads, training_front_end(config)
    others = [STEMS.index(name) for name in STEM_NAMES if name not in heads]

    def to_features(stems: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        mixture_spectrum = band_spectrum(stems[:, 0], front)  # the input, and every phase-sensitive target
        if config.training.phase_sensitive_target:
            target = lambda source: phase_sensitive_magnitude(source, mixture_spectrum, front)  # noqa: E731
        else:
            target = lambda source: magnitude(source, front)  # noqa: E731
        targets = {head: target(stems[:, STEMS.index(head)]) for head in heads}
        if config.training.residual_loss:
            # the sum of the other stems, as the evaluation's residual reference (trainer/evaluate.py)
            targets[RESIDUAL] = target(tf.reduce_sum(tf.gather(stems, others, axis=1), axis=1))
        return network_layout(tf.abs(mixture_spectrum), front), targets

    return batches.map(to_features, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
