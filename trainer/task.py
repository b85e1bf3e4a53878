"""`python -m trainer.task` / `atsep train`: train the U-Net from TFRecord shards and export it.

    python -m trainer.task --data data/records --model_dir models/trained --epochs 10

The config starts from defaults (or --config) with the flags below applied on top. A run started again
with the same --checkpoint_dir continues after its last completed epoch (after a kill, or with a larger
--epochs); delete that folder to start over. The export is the epoch with the highest validation SDR
(val_sdr, see trainer/validation.py). On Vertex AI
the AIP_MODEL_DIR, AIP_CHECKPOINT_DIR and AIP_TENSORBOARD_LOG_DIR variables stand in for missing flags.
"""
from __future__ import annotations

import argparse
import sys

from common import storage
from model.config import CONFIG_FILE, Config
from model.model_dir import EXPORT_DIR
from trainer import paths
from trainer.dataset_info import DatasetError, check_dataset, read_dataset_info

OVERRIDES = {  # flag -> Config.replace key
    "epochs": "training__epochs", "steps_per_epoch": "training__steps_per_epoch",
    "batch_size": "training__batch_size", "learning_rate": "training__learning_rate",
    "seed": "training__seed", "sample_rate": "audio__sample_rate",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="atsep train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/records", help="folder with dataset.json and <split>/ shards")
    parser.add_argument("--model_dir", help=f"where the model is exported (default $AIP_MODEL_DIR or "
                                            f"{paths.DEFAULT_MODEL_DIR})")
    parser.add_argument("--checkpoint_dir", help="restart state (default $AIP_CHECKPOINT_DIR or "
                                                 "<model_dir>.work/checkpoints)")
    parser.add_argument("--tensorboard_dir", help="TensorBoard logs (default $AIP_TENSORBOARD_LOG_DIR or "
                                                  "<model_dir>.work/logs)")
    parser.add_argument("--config", help="a config.json (or a folder holding one) to start from")
    for flag, kind in (("epochs", int), ("steps_per_epoch", int), ("batch_size", int),
                       ("learning_rate", float), ("sample_rate", int), ("seed", int)):
        parser.add_argument(f"--{flag}", type=kind, help=f"overrides {OVERRIDES[flag].replace('__', '.')}")
    parser.add_argument("--strategy", choices=("default", "mirrored", "multi_worker"), default="default",
                        help="tf.distribute strategy (multi_worker reads TF_CONFIG)")
    parser.add_argument("--precision", choices=("auto", "float32", "mixed_float16"), default="auto",
                        help="mixed_float16: float16 compute, float32 weights, masks and loss; auto (default): "
                             "mixed_float16 when a GPU is visible, else float32")
    parser.add_argument("--patience", type=int, default=5, help="epochs without a better val_sdr before stopping")
    parser.add_argument("--data_description", default="",
                        help="what the records were made from, for MODEL_CARD.md")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    config = Config()
    if args.config:  # a config.json or a folder holding one, local or gs://
        in_folder = storage.join(args.config, CONFIG_FILE)
        with storage.open_file(in_folder if storage.exists(in_folder) else args.config) as handle:
            config = Config.from_json(handle.read())
    overrides = {key: getattr(args, flag) for flag, key in OVERRIDES.items() if getattr(args, flag) is not None}
    return config.replace(**overrides) if overrides else config


def check_model_dir(model_dir: str) -> None:
    """Export replaces the model folder whole: refuse one that holds anything but an earlier export."""
    existing = set(storage.list_dir(model_dir))
    if existing and not {EXPORT_DIR, CONFIG_FILE} <= existing:
        listing = ", ".join(sorted(existing)[:5])
        raise ValueError(f"{model_dir} holds files that are not an exported model ({listing}); "
                         "exporting would replace them: choose another --model_dir")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dirs = paths.resolve_dirs(args.model_dir, args.checkpoint_dir, args.tensorboard_dir)
    try:
        config = build_config(args)
        info = read_dataset_info(args.data)
        check_dataset(info, config)
        check_model_dir(dirs.model_dir)
    except (DatasetError, OSError, ValueError) as error:
        print(f"atsep train: error: {error}", file=sys.stderr)
        return 2
    from trainer import publish, training  # TensorFlow from here on

    try:
        run = training.train(args.data, config, dirs, strategy=args.strategy, patience=args.patience,
                             precision=args.precision)
    except (training.RestartError, FileNotFoundError) as error:
        print(f"atsep train: error: {error}", file=sys.stderr)
        return 2
    if run.chief:
        publish.publish(run, config, dirs, {"description": args.data_description, "location": args.data,
                                            "info": info})
    return 0


if __name__ == "__main__":
    sys.exit(main())
