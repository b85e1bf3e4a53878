"""`atsep`: one command over the product's stages; each subcommand is its module's `main(argv)`.

Modules are imported only when their subcommand runs, so `atsep --help` and every
`atsep SUBCOMMAND --help` answer without importing TensorFlow. The terminal shows the product's own
messages: TensorFlow's C++ start-up lines (absl, CUDA probes on a CPU machine, CPU feature notes) and
third-party Python warnings are held back unless `--verbose` (anywhere on the line) asks for them.
"""
from __future__ import annotations

import gc
import importlib
import logging
import os
import re
import sys
import tempfile
import warnings

SUBCOMMANDS = {
    "generate": ("atsep.synth", "write synthetic MUSDB18-shaped songs"),
    "preprocess": ("beam_jobs.preprocess", "MUSDB18 songs -> sharded TFRecords (Beam)"),
    "train": ("trainer.task", "train the U-Net from TFRecords and export it"),
    "separate": ("beam_jobs.separate", "separate songs into stems, plots and a manifest (Beam)"),
    "evaluate": ("trainer.evaluate", "BSSEval v4 (museval) of a model on a MUSDB-layout folder"),
    "retrain": ("atsep.retrain", "preprocess -> train -> evaluate -> promote only if better (model registry)"),
}
USES_TENSORFLOW = {"preprocess", "train", "separate", "evaluate", "retrain"}
VERBOSE = "--verbose"
# what TensorFlow's C++ side prints while it starts: absl's pre-init notice, glog-style lines, CPU notes
NATIVE_START_UP = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWE]\d{4} \d\d:\d\d:\d\d"
                             r"|To enable the following instructions|rebuild TensorFlow with)")


def usage() -> str:
    lines = ["usage: atsep SUBCOMMAND [options]   (atsep SUBCOMMAND --help for its options)", "",
             "subcommands:"]
    lines += [f"  {name:<12}{summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def quiet_libraries() -> None:
    """Our progress at INFO; Beam's worker chatter and TensorFlow's start-up notices only when they matter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"(librosa|keras|tensorflow|apache_beam|google|audioread|museval)")


def start_tensorflow_quietly() -> None:
    """Import TensorFlow and run its first op with file descriptor 2 captured, then pass on whatever it
    printed that is not a C++ start-up line (those print below any log level, before absl starts)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe, on a machine without a GPU
            _ = tf.constant(0.0) + 1.0  # the first op: CPU feature notes
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        kept = [line for line in captured.read().decode(errors="replace").splitlines()
                if line.strip() and not NATIVE_START_UP.match(line)]
    if kept:
        print("\n".join(kept), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = VERBOSE in argv
    argv = [arg for arg in argv if arg != VERBOSE]
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"atsep: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    # start-up: the imports below make millions of objects that live as long as the process, and the
    # collector walked them again and again while they were made (about 1 CPU s of the 5 to 6 that
    # importing TensorFlow and Beam took here); frozen afterwards, the run's own collections skip them
    gc.disable()
    try:
        if not verbose:
            quiet_libraries()
            if name in USES_TENSORFLOW and not {"-h", "--help"} & set(rest):
                start_tensorflow_quietly()
        module = importlib.import_module(SUBCOMMANDS[name][0])
    finally:
        gc.freeze()
        gc.enable()
    result = module.main(rest)
    return int(result or 0)


def run() -> None:
    """The `atsep` command: `main`, then exit without the interpreter's last full garbage collection.

    TensorFlow, Keras and Beam leave millions of objects behind, and walking them all once more at exit
    took about 2 s of every `atsep separate` here (`python -c "import tensorflow"` alone spends 1.1 to
    1.6 s exiting). Frozen objects are left out of that collection; atexit handlers, logging's flush and
    module teardown still run, and every output is closed and renamed into place before `main` returns."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
