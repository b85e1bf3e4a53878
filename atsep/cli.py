"""`atsep`: one command over the product's stages; each subcommand is its module's `main(argv)`.

Modules are imported only when their subcommand runs, so `atsep --help` and every
`atsep SUBCOMMAND --help` answer without importing TensorFlow.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys

SUBCOMMANDS = {
    "generate": ("atsep.synth", "write synthetic MUSDB18-shaped songs"),
    "preprocess": ("beam_jobs.preprocess", "MUSDB18 songs -> sharded TFRecords (Beam)"),
    "train": ("trainer.task", "train the U-Net from TFRecords and export it"),
    "separate": ("beam_jobs.separate", "separate songs into stems, plots and a manifest (Beam)"),
    "evaluate": ("trainer.evaluate", "BSSEval v4 (museval) of a model on a MUSDB-layout folder"),
    "retrain": ("atsep.retrain", "preprocess -> train -> evaluate -> promote only if better (model registry)"),
}


def usage() -> str:
    lines = ["usage: atsep SUBCOMMAND [options]   (atsep SUBCOMMAND --help for its options)", "",
             "subcommands:"]
    lines += [f"  {name:<12}{summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def quiet_libraries() -> None:
    """Our progress at INFO; Beam's worker chatter and TensorFlow's start-up notices only when they matter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"atsep: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    quiet_libraries()
    module = importlib.import_module(SUBCOMMANDS[name][0])
    result = module.main(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
