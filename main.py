"""The seed's command line, kept as thin aliases over the same code as `atsep`.

    python main.py --sampling_rate 11025 --train True --epoch 50 --batch 16 --model_save_path ./models/
    python main.py --sampling_rate 11025 --test song.wav --model_save_path ./models/
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_SONGS = "data/musdb-synth"
DEFAULT_RECORDS = "data/records"
TRAINED_NAME = "unet"  # the model folder inside --model_save_path, beside the bundled `default`


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "y")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sampling_rate", type=int, default=11025, help="the model's internal sample rate")
    parser.add_argument("--train", type=_flag, default=False, help="True to train")
    parser.add_argument("--epoch", type=int, default=50)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--model_save_path", default="./models/", help="where the model is saved / loaded")
    parser.add_argument("--test", metavar="SONG", help="separate this song with the saved model")
    parser.add_argument("--data", default=DEFAULT_RECORDS, help="TFRecords to train from (made if absent)")
    parser.add_argument("--output", default="out/test", help="where --test writes stems and plots")
    parser.add_argument("--config", help="a config.json to train from (default: the built-in config)")
    return parser.parse_args(argv)


def train(args: argparse.Namespace) -> int:
    from atsep import synth
    from beam_jobs import preprocess
    from trainer import task

    if not (Path(args.data) / "dataset.json").exists():
        print(f"{args.data} has no dataset: generating songs and preprocessing them first")
        if not Path(DEFAULT_SONGS).exists():
            synth.main(["--output", DEFAULT_SONGS])
        preprocess.main(["--input", DEFAULT_SONGS, "--output", args.data, "--sample_rate", str(args.sampling_rate)])
    model_dir = Path(args.model_save_path) / TRAINED_NAME
    return task.main(["--data", args.data, "--model_dir", str(model_dir), "--epochs", str(args.epoch),
                      "--batch_size", str(args.batch), "--sample_rate", str(args.sampling_rate),
                      *(["--config", args.config] if args.config else [])])


def saved_model_dir(model_save_path: str) -> Path:
    """The model trained by --train, else the bundled default beside it, else the path itself."""
    for candidate in (Path(model_save_path) / TRAINED_NAME, Path(model_save_path) / "default"):
        if (candidate / "config.json").is_file():
            return candidate
    return Path(model_save_path)


def test(args: argparse.Namespace) -> int:
    from beam_jobs import separate

    model_dir = saved_model_dir(args.model_save_path)
    print(f"separating {args.test} with the model in {model_dir}")
    return separate.main([args.test, "--output", args.output, "--model_dir", str(model_dir)])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.train:
        return int(train(args) or 0)
    if args.test:
        return int(test(args) or 0)
    print("nothing to do: pass --train True or --test SONG (see --help)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
