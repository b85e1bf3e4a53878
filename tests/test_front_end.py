"""One front end (model/frontend.py): the network's input for the same song is the same in training
(preprocess's resampling and patches -> trainer/data.py), in the validation proxy (trainer/validation.py)
and in the separator (model/separator.py), at input rates that are and are not multiples of the model's.

A network that records what it is given stands in for the U-Net: the inputs are what is compared.
"""
from __future__ import annotations

import numpy as np
import pytest

from audio.musdb import Track
from beam_jobs.preprocess_tracks import Song, cut_patches, resample_song
from model.config import MIXTURE, STEM_NAMES, Config
from model.frontend import records_rate

CONFIG = Config().replace(network__filters=(4, 8, 16), network__patch_frames=32, data__patch_seconds=2.0,
                          training__batch_size=2)
# per bin, the mean |difference| over frames against the mean level of all bins. Measured: 0.96% at 8 kHz
# (soxr's filters to 11025 and to 44100 Hz roll off a little differently under the input's 4 kHz Nyquist),
# at most 0.08% at the other rates, 2e-7 between training and the proxy; records at the model's rate (the
# front end before this one, data.rate_factor 1) err by 92-125% in the top bins at 16 to 48 kHz
TOLERANCE = 0.02


class Recorder:
    """A mask function that keeps every batch of network input it is given (and masks nothing out)."""

    def __init__(self):
        self.inputs: list[np.ndarray] = []

    def __call__(self, magnitude: np.ndarray) -> dict[str, np.ndarray]:
        self.inputs.append(magnitude.copy())
        return {head: np.full(magnitude.shape, 0.5, np.float32) for head in CONFIG.network.heads}


def _song(rate: int) -> dict[str, np.ndarray]:
    """Three seconds of white noise per stem (every bin of the model's band has content, up to the input's
    Nyquist), the mixture their sum."""
    rng = np.random.default_rng(rate)
    stems = {name: 0.05 * rng.standard_normal((3 * rate, 2)).astype(np.float32) for name in STEM_NAMES}
    return {MIXTURE: sum(stems.values()), **stems}


def _write_records(song: dict[str, np.ndarray], rate: int, folder) -> None:
    """The preprocess job's per-track steps (resample to the records' rate, cut patches, encode) into the
    validation split's shard."""
    import tensorflow as tf

    from model.records import encode_patch

    resampled = resample_song(Song(Track("song", "valid"), rate, song), records_rate(CONFIG))
    (folder / "valid").mkdir(parents=True)
    with tf.io.TFRecordWriter(str(folder / "valid" / "valid-00000-of-00001.tfrecord")) as writer:
        for patch in cut_patches(resampled, round(CONFIG.data.patch_seconds * records_rate(CONFIG))):
            writer.write(encode_patch(patch.track, patch.split, patch.offset, patch.rate, patch.stems))


def _assert_same(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, what
    error = np.abs(actual - expected).mean(axis=(0, 2))  # per bin
    worst = int(error.argmax())
    assert error[worst] <= TOLERANCE * np.abs(expected).mean(), (what, worst, error[worst], np.abs(expected).mean())


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_the_network_sees_the_same_input_in_training_validation_and_separation(rate, tmp_path):
    from model.separator import Separator
    from trainer import data, validation

    song = _song(rate)
    _write_records(song, rate, tmp_path)
    # training: the first fixed crop of the first patch (training's random crops go through the same
    # features; the validation split is the one whose crops are fixed)
    trained_on = next(iter(data.validation_dataset(str(tmp_path), CONFIG)))[0].numpy()[0]
    # the validation proxy: the same crop, separated the way the proxy separates it
    proxy = Recorder()
    crops = next(iter(data.validation_crops(str(tmp_path), CONFIG))).numpy()
    validation.separate_crops(Separator(CONFIG, proxy), crops[:1, 0])
    # the separator: the first segment of the song at its own rate
    separator = Recorder()
    Separator(CONFIG, separator).separate(song[MIXTURE], rate)

    _assert_same(proxy.inputs[0][0], trained_on, "validation proxy vs training")
    # the separator takes the whole song's STFT: a training crop's last frames reach past the crop's end
    # into zero padding, the song's same frames into the song that goes on (n_fft / 2 samples: 2 frames)
    inside = CONFIG.network.patch_frames - CONFIG.stft.n_fft // (2 * CONFIG.stft.hop)
    _assert_same(separator.inputs[0][0][:inside], trained_on[:inside], "separator vs training")
