"""`atsep retrain`: preprocess -> train -> evaluate -> promote only if the new model beats the current one.

    atsep retrain run --songs data/musdb-synth --registry models/registry [--config C] [beam options]
    atsep retrain evaluate --registry R --version V --songs S      (one stage; Vertex AI Pipelines runs these)
    atsep retrain promote --registry R --version V
    atsep retrain status --registry R

The registry is a folder, local or gs://, that keeps every trained version and one pointer:
  versions/<version>/model/            the exported model (what `atsep separate --model_dir` reads)
  versions/<version>/evaluation.json   the candidate's and the then-current model's validation SDR
  versions/<version>/decision.json     what the gate decided, and why
  current                              the promoted version's name; only `promote` writes it
The gate compares the mean validation SDR (BSSEval v4, median over tracks, see trainer/evaluate.py) over
the stems both models separate, both scored on the same songs in the same evaluate stage. A candidate is
promoted when there is no current model, or when it beats the current one by more than --min_improvement
dB; an evaluation made against another current model than the one now in place is stale and refused.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path

from beam_jobs import storage

CURRENT_FILE = "current"
VERSIONS = "versions"
MODEL = "model"
EVALUATION_FILE = "evaluation.json"
DECISION_FILE = "decision.json"
METRIC = "SDR"
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def new_version() -> str:
    """A sortable version name: the UTC time of the run."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def check_version(version: str) -> str:
    if not VERSION_PATTERN.match(version or ""):
        raise ValueError(f"version {version!r} must match {VERSION_PATTERN.pattern}")
    return version


def version_dir(registry: str, version: str) -> str:
    return storage.join(storage.absolute(registry), VERSIONS, check_version(version))


def model_dir(registry: str, version: str) -> str:
    return storage.join(version_dir(registry, version), MODEL)


def current_version(registry: str) -> str | None:
    """The promoted version, or None when nothing has been promoted yet."""
    path = storage.join(storage.absolute(registry), CURRENT_FILE)
    return check_version(storage.read_text(path).strip()) if storage.exists(path) else None


def read_json(path: str) -> dict:
    return json.loads(storage.read_text(path))


def write_json(path: str, data: dict) -> None:
    storage.write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


# --- evaluate -----------------------------------------------------------------------------------------

def score_model(model: str, songs: str, split: str, tracks: list[str] | None, output: str) -> dict:
    """Validation SDR of one exported model (local or remote) on local songs: per target and tracks."""
    from trainer.evaluate import evaluate  # TensorFlow and museval: only when really scoring

    summary = evaluate(songs, storage.stage_tree(model), split, output, tracks)
    per_target = {target: _finite(summary["scores"]["model"][target][METRIC]) for target in summary["targets"]}
    return {"per_target": per_target, "tracks": summary["tracks"], "model_version": summary["model_version"]}


def evaluate_version(registry: str, version: str, songs: str, split: str = "valid",
                     tracks: list[str] | None = None) -> dict:
    """Score the candidate and the current model (if any) on the same songs; write evaluation.json."""
    champion = current_version(registry)
    local_songs = stage_songs(songs, split, tracks)
    with tempfile.TemporaryDirectory(prefix="retrain-eval-") as work:
        scored = {"candidate": score_model(model_dir(registry, version), local_songs, split, tracks,
                                           str(Path(work) / "candidate"))}
        if champion is not None and champion != version:
            scored["champion"] = score_model(model_dir(registry, champion), local_songs, split, tracks,
                                             str(Path(work) / "champion"))
    evaluation = {
        "version": version, "metric": METRIC, "songs": songs, "split": split, "tracks": tracks,
        "candidate": {"version": version, **scored["candidate"]},
        "champion": {"version": champion, **scored["champion"]} if "champion" in scored else None,
        "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(storage.join(version_dir(registry, version), EVALUATION_FILE), evaluation)
    return evaluation


def stage_songs(songs: str, split: str, tracks: list[str] | None) -> str:
    """trainer.evaluate reads local files: copy just the scored songs of a remote root (local ones pass)."""
    from apache_beam.io.filesystems import FileSystems

    from model.tracks import find_tracks

    root = storage.absolute(songs).rstrip("/")
    if storage.is_local(root):
        return root
    paths = [meta.path for meta in FileSystems.match([storage.join(root, "**")])[0].metadata_list]
    wanted = [name.lower() for name in tracks or ()]
    local = tempfile.mkdtemp(prefix="retrain-songs-")
    for track in find_tracks(root, paths):
        if split not in ("all", track.split) or (wanted and not any(w in track.name.lower() for w in wanted)):
            continue
        for path in [track.container] if track.container else [path for _, path in track.files]:
            target = Path(local, path[len(root) + 1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(storage.read_bytes(path))
    return local


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


# --- the gate -----------------------------------------------------------------------------------------

def mean_score(per_target: dict[str, float | None], targets: list[str]) -> float | None:
    """Mean SDR over `targets`; None when any of them could not be scored (no silent free pass)."""
    values = [per_target.get(target) for target in targets]
    if not values or any(value is None for value in values):
        return None
    return sum(values) / len(values)


def decide(evaluation: dict, current: str | None, min_improvement: float = 0.0) -> dict:
    """The gate: promote or not, with the scores and the reason. Pure: reads nothing, writes nothing."""
    candidate, champion = evaluation["candidate"], evaluation.get("champion")
    version = candidate["version"]
    compared_with = champion["version"] if champion else None
    decision = {"version": version, "current_before": current, "metric": evaluation["metric"],
                "min_improvement": min_improvement, "promoted": False}
    if version == current:
        return {**decision, "reason": f"{version} is already the current model"}
    if compared_with != current:
        return {**decision, "reason": f"stale evaluation: it compared against {compared_with}, but the "
                                      f"current model is now {current}; evaluate again"}
    targets = sorted(set(candidate["per_target"]) & set(champion["per_target"] if champion else
                                                        candidate["per_target"]))
    new = mean_score(candidate["per_target"], targets)
    old = mean_score(champion["per_target"], targets) if champion else None
    decision.update(targets=targets, candidate_score=new, current_score=old)
    if new is None:
        return {**decision, "reason": "the candidate could not be scored on every target"}
    if champion is None:
        return {**decision, "promoted": True, "reason": "no current model"}
    if old is None:
        return {**decision, "promoted": True, "reason": "the current model could not be scored"}
    if new > old + min_improvement:
        return {**decision, "promoted": True,
                "reason": f"{new:.3f} dB beats {old:.3f} dB by more than {min_improvement} dB"}
    return {**decision, "reason": f"{new:.3f} dB does not beat {old:.3f} dB by more than {min_improvement} dB"}


def promote(registry: str, version: str, min_improvement: float = 0.0) -> dict:
    """Apply the gate to a version's evaluation.json; move `current` only when it promotes."""
    folder = version_dir(registry, version)
    if not storage.exists(storage.join(folder, MODEL, "config.json")):
        raise FileNotFoundError(f"no exported model in {storage.join(folder, MODEL)}")
    evaluation_path = storage.join(folder, EVALUATION_FILE)
    if not storage.exists(evaluation_path):
        raise FileNotFoundError(f"{evaluation_path} is missing: run `atsep retrain evaluate` first")
    decision = decide(read_json(evaluation_path), current_version(registry), min_improvement)
    decision["decided_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json(storage.join(folder, DECISION_FILE), decision)
    if decision["promoted"]:
        storage.write_text_atomic(storage.join(storage.absolute(registry), CURRENT_FILE), version + "\n")
    return decision


# --- the local chain ----------------------------------------------------------------------------------

def run_chain(args: argparse.Namespace, beam_args: list[str]) -> dict:
    """preprocess (Beam, local runner unless told) -> train (local trainer) -> evaluate -> promote."""
    from beam_jobs import preprocess
    from trainer import task

    version = check_version(args.version or new_version())
    if storage.exists(storage.join(model_dir(args.registry, version), "config.json")):
        raise ValueError(f"version {version} already exists in {args.registry}")
    work = storage.join(storage.absolute(args.work), version)
    records = storage.join(work, "records")
    config = ["--config", args.config] if args.config else []
    if preprocess.main(["--input", args.songs, "--output", records, *config, *beam_args]) != 0:
        raise RuntimeError("preprocess failed")
    overrides = [item for flag in ("epochs", "steps_per_epoch") if getattr(args, flag) is not None
                 for item in (f"--{flag}", str(getattr(args, flag)))]
    if task.main(["--data", records, "--model_dir", model_dir(args.registry, version),
                  "--checkpoint_dir", storage.join(work, "checkpoints"),
                  "--tensorboard_dir", storage.join(work, "logs"), *config, *overrides,
                  "--data_description", f"retrain {version} from {args.songs}"]) != 0:
        raise RuntimeError("training failed")
    split, tracks = evaluation_songs(args)
    evaluate_version(args.registry, version, args.songs, split, tracks)
    return promote(args.registry, version, args.min_improvement)


def evaluation_songs(args: argparse.Namespace) -> tuple[str, list[str] | None]:
    """The songs the gate scores: --tracks if given, else the config's validation tracks, else the split."""
    if args.tracks:
        return args.split, args.tracks
    if args.split == "valid" and args.config:
        from model.config import CONFIG_FILE, Config

        path = args.config if args.config.endswith(".json") else storage.join(args.config, CONFIG_FILE)
        named = Config.from_json(storage.read_text(path)).data.validation_tracks
        if named:  # the trainer's validation songs (preprocess put them in `valid`)
            return "all", list(named)
    return args.split, None


# --- command line -------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The stage and its options; the rest (run only) goes to the preprocess job's Beam runner."""
    parser = argparse.ArgumentParser(prog="atsep retrain", description=__doc__.split("\n")[0])
    stages = parser.add_subparsers(dest="stage", required=True)
    run = stages.add_parser("run", help="the whole chain, locally")
    run.add_argument("--songs", default="data/musdb-synth", help="MUSDB-layout songs, local or gs://")
    run.add_argument("--work", default="out/retrain", help="records, checkpoints and logs per version")
    run.add_argument("--config", default="", help="config.json for preprocess and training")
    run.add_argument("--epochs", type=int, help="overrides training.epochs")
    run.add_argument("--steps_per_epoch", type=int, help="overrides training.steps_per_epoch")
    evaluate = stages.add_parser("evaluate", help="score a version and the current model")
    evaluate.add_argument("--songs", required=True, help="MUSDB-layout songs, local or gs://")
    promote_stage = stages.add_parser("promote", help="the gate: move `current` if the version is better")
    status = stages.add_parser("status", help="print the current version and its model folder")
    for stage in (run, evaluate, promote_stage, status):
        stage.add_argument("--registry", default="models/registry", help="registry folder, local or gs://")
    for stage in (run, evaluate, promote_stage):
        stage.add_argument("--version", default="" if stage is run else None, required=stage is not run,
                           help="version name" + (" (default: the UTC time)" if stage is run else ""))
    for stage in (run, evaluate):
        stage.add_argument("--split", default="valid", choices=("train", "valid", "test", "all"),
                           help="which songs score the models")
        stage.add_argument("--tracks", action="append", metavar="NAME", help="only songs whose name holds NAME")
    for stage in (run, promote_stage):
        stage.add_argument("--min_improvement", type=float, default=0.0,
                           help="dB of mean validation SDR the candidate must gain over the current model")
    args, rest = parser.parse_known_args(argv)
    if rest and args.stage != "run":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args, rest


def main(argv: list[str] | None = None) -> int:
    args, beam_args = parse_args(argv)
    try:
        if args.stage == "run":
            decision = run_chain(args, beam_args)
        elif args.stage == "evaluate":
            evaluation = evaluate_version(args.registry, args.version, args.songs, args.split, args.tracks)
            print(json.dumps(evaluation, indent=2))
            return 0
        elif args.stage == "promote":
            decision = promote(args.registry, args.version, args.min_improvement)
        else:
            current = current_version(args.registry)
            print(f"{current} {model_dir(args.registry, current)}" if current else "no current model")
            return 0
    except (OSError, ValueError, RuntimeError) as error:
        print(f"atsep retrain: error: {error}", file=sys.stderr)
        return 2
    verdict = "promoted" if decision["promoted"] else "kept the current model"
    print(f"retrain {decision['version']}: {verdict} ({decision['reason']}); current: "
          f"{current_version(args.registry)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
