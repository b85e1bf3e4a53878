"""Training benchmark (not a test): examples per second on this machine, and the wall time of a run.

    python bench/train.py --data data/musdb18-7-records --config configs/default-model.json --steps 40
    python bench/train.py --model_dir model/bundled      # wall time of the run that made a model

The first form times `--steps` training steps of the real model on the real input pipeline (reads,
crops, remixing, augmentation, STFTs) after `--warmup` steps that build the graph. The second reads the
model's history.csv (epoch_s per epoch) and prints the training wall time up to the exported epoch
(the one `atsep evaluate` scores) and for the whole run. Say under what load you measured.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def examples_per_second(data_dir: str, config_path: str, steps: int, warmup: int) -> dict:
    from model.config import Config
    from trainer import data, network

    source = Path(config_path)
    config = Config.load(source) if source.is_dir() else Config.from_json(source.read_text())
    model, _ = network.build_training_model(config)
    network.compile_model(model, config, steps + warmup)
    batches = data.training_dataset(data_dir, config)
    model.fit(batches, epochs=1, steps_per_epoch=warmup, verbose=0)
    started = time.monotonic()
    model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0)
    seconds = time.monotonic() - started
    batch = config.training.batch_size
    return {"steps": steps, "batch_size": batch, "seconds": round(seconds, 1),
            "examples_per_s": round(steps * batch / seconds, 2), "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2)}


def run_wall_time(model_dir: str) -> dict:
    from model.config import Config
    from trainer.history import best_row, read_history

    rows = read_history(str(Path(model_dir) / "history.csv"))
    if not rows or "epoch_s" not in rows[0]:
        raise SystemExit(f"{model_dir}/history.csv has no epoch_s column")
    best = best_row(rows, "val_sdr", "max")
    # an export averaged over the last epochs needs the whole run
    last = rows[-1] if Config.load(model_dir).training.average_epochs else best
    upto = [row["epoch_s"] for row in rows if row["epoch"] <= last["epoch"]]
    return {"epochs_run": len(rows), "exported_epoch": int(last["epoch"]) + 1,
            "minutes_to_exported_epoch": round(sum(upto) / 60, 1),
            "minutes_whole_run": round(sum(row["epoch_s"] for row in rows) / 60, 1),
            **{key: round(value, 2) for key, value in best.items() if key.startswith("val_sdr")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/musdb18-7-records")
    parser.add_argument("--config", default="configs/default-model.json")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--model_dir", help="report the wall time of the run that exported this model")
    args = parser.parse_args(argv)
    result = (run_wall_time(args.model_dir) if args.model_dir
              else examples_per_second(args.data, args.config, args.steps, args.warmup))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
