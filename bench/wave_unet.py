"""Architecture comparison: a small Wave-U-Net (Stoller et al. 2018) against the spectrogram-mask U-Net.

    python bench/wave_unet.py --data data/musdb18-7-records --seconds 600          # train + score Wave-U-Net
    python bench/wave_unet.py --data data/musdb18-7-records --score_mask_model model/bundled

Both are scored with the trainer's validation-SDR proxy (trainer/validation.py: global SDR on the
fixed ~3 s crops of the valid split at the records' rate, median over crops) so the two rows compare
like with like; the Wave-U-Net is trained on the same tf.data pipeline (remix, gain, channel swap) for a
fixed wall time. Prints examples/s (training), parameters, weight size, separation speed and the SDRs.
Not a test: run it by hand on a quiet machine and say under what load.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_wave_unet(heads, channels: int, levels: int = 6, filters: int = 24):
    """Wave-U-Net (M4-like): 15-tap down convs + decimation, nearest upsampling + 5-tap up convs,
    the mix concatenated before a 1x1 tanh output per head. Input length: a multiple of 2**levels."""
    import keras
    from keras import layers

    mix = keras.Input((None, channels), name="mix")
    x, skips = mix, []
    for level in range(levels):
        x = layers.Conv1D(filters * (level + 1), 15, padding="same")(x)
        x = layers.LeakyReLU(0.2)(x)
        skips.append(x)
        x = x[:, ::2]
    x = layers.LeakyReLU(0.2)(layers.Conv1D(filters * (levels + 1), 15, padding="same")(x))
    for level in reversed(range(levels)):
        x = layers.UpSampling1D(2)(x)
        x = layers.Concatenate()([x, skips[level]])
        x = layers.LeakyReLU(0.2)(layers.Conv1D(filters * (level + 1), 5, padding="same")(x))
    x = layers.Concatenate()([x, mix])
    outputs = {head: layers.Conv1D(channels, 1, activation="tanh", name=head)(x) for head in heads}
    return keras.Model(mix, outputs, name="wave_unet")


def waveform_batches(dataset, heads):
    """[batch, stems, samples, channels] -> (mix, {head: stem}) for Keras."""
    from trainer.data import STEMS

    return dataset.map(lambda s: (s[:, 0], {h: s[:, STEMS.index(h)] for h in heads}))


class TimeLimit:
    """A Keras callback factory: stop training after `seconds` of wall time."""

    @staticmethod
    def make(seconds: float):
        import keras

        class _Stop(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.start = time.monotonic()

            def on_train_batch_end(self, batch, logs=None):
                if time.monotonic() - self.start > seconds:
                    self.model.stop_training = True

        return _Stop()


def score(separate, crops, heads) -> dict:
    """Proxy SDR per head (median over crops) and separation seconds for all crops."""
    import numpy as np

    from trainer.data import STEMS
    from trainer.validation import sdr, summarise

    scores, started, audio = {h: [] for h in heads}, time.monotonic(), 0
    for stems in crops:
        estimates = separate(stems[:, 0])
        audio += int(stems.shape[0] * stems.shape[2])
        for head in heads:
            scores[head].append(sdr(stems[:, STEMS.index(head)].numpy(), np.asarray(estimates[head])))
    seconds = time.monotonic() - started
    return {**summarise({h: np.concatenate(v) for h, v in scores.items()}), "separate_s": round(seconds, 1),
            "audio_s": audio}


def train_wave_unet(args, config) -> dict:
    import keras
    import numpy as np

    from trainer import data

    heads = config.network.heads
    model = build_wave_unet(heads, config.audio.channels, args.levels, args.filters)
    model.compile(keras.optimizers.Adam(1e-3), loss={h: "mean_squared_error" for h in heads})
    train = waveform_batches(data.training_waveforms(args.data, config), heads).prefetch(2)
    started = time.monotonic()
    history = model.fit(train, epochs=1, steps_per_epoch=10**6, verbose=0, callbacks=[TimeLimit.make(args.seconds)])
    wall = time.monotonic() - started
    steps = len(history.history["loss"]) and model.optimizer.iterations.numpy()
    crops = data.validation_crops(args.data, config)
    separate = lambda mix: model(mix, training=False)  # noqa: E731
    params = int(sum(np.prod(w.shape) for w in model.weights))
    return {"model": f"Wave-U-Net L{args.levels} F{args.filters}", "train_s": round(wall),
            "steps": int(steps), "examples_per_s": round(steps * config.training.batch_size / wall, 2),
            "params": params, "weights_mb": round(params * 4 / 2**20, 1), **score(separate, crops, heads)}


def score_mask_model(args, config) -> dict:
    import numpy as np
    import tensorflow as tf

    from model.separator import Separator
    from trainer import data
    from trainer.validation import separate_crops

    # counted from the variables' checkpoint: the separator below is what loads the SavedModel
    variables = tf.train.list_variables(os.path.join(args.score_mask_model, "saved_model", "variables", "variables"))
    params = sum(int(np.prod(shape)) for name, shape in variables if "OBJECT_GRAPH" not in name)
    crops = data.validation_crops(args.data, config)
    separator = Separator.load(args.score_mask_model)
    separate = lambda mix: separate_crops(separator, mix.numpy())  # noqa: E731
    return {"model": f"mask U-Net {args.score_mask_model}", "params": params,
            "weights_mb": round(params * 4 / 2**20, 1), **score(separate, crops, config.network.heads)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/musdb18-7-records")
    parser.add_argument("--config", default="configs/default-model.json")
    parser.add_argument("--seconds", type=float, default=600, help="Wave-U-Net training wall time")
    parser.add_argument("--levels", type=int, default=6)
    parser.add_argument("--filters", type=int, default=24)
    parser.add_argument("--score_mask_model", help="score this exported mask model instead of training")
    args = parser.parse_args(argv)
    from pathlib import Path

    from model.config import Config

    source = Path(args.config)
    config = Config.load(source) if source.is_dir() else Config.from_json(source.read_text())
    if args.score_mask_model:
        config = Config.load(args.score_mask_model)
        result = score_mask_model(args, config)
    else:
        result = train_wave_unet(args, config)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
