"""`atsep retrain`: check -> preprocess -> train -> evaluate -> promote only if the new model is better.

    atsep retrain run --songs data/musdb-synth --registry models/registry [--config C] [beam options]
    atsep retrain check --songs S --registry R [--config C]     (one stage each; Vertex AI Pipelines runs
    atsep retrain evaluate --registry R --version V --songs S    these four in its containers)
    atsep retrain promote --registry R --version V [--force]
    atsep retrain status --registry R

The registry is a folder, local or gs://, that keeps every trained version and one pointer:
  versions/<version>/model/            the exported model (what `atsep separate --model_dir` reads)
  versions/<version>/evaluation.json   the candidate's, the then-current model's and the mixture's scores
  versions/<version>/decision.json     what the gate decided, and why
  current                              the promoted version's name; only `promote` writes it
The gate (docs/retraining.md) scores both models on the held-out `test` split: songs that neither trained
the candidate nor chose its exported epoch (those are `train` and `valid`). It promotes a candidate whose
mean SDR clears the floor (the mixture-as-estimate score on the same songs + --min_over_mixture dB) and,
when a model is current, beats it by more than --min_improvement dB. A current model that cannot be scored
blocks promotion unless --force; an evaluation made against another current model is stale and refused.

Exit status: 0 promoted, or the stage did its work; 3 not promoted (the gate kept the current model,
decision.json says why); 2 invalid input (found before anything was preprocessed or trained); 1 failure.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import storage
from model.config import CONFIG_FILE, Config

CURRENT_FILE = "current"
VERSIONS = "versions"
MODEL = "model"
EVALUATION_FILE = "evaluation.json"
DECISION_FILE = "decision.json"
METRIC = "SDR"
BASELINE = "mixture"  # trainer.evaluate's floor method: the mixture as every stem's estimate
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
HELD_OUT_SPLITS = ("test",)  # audio.musdb: `train` trains, `valid` (named train songs) picks the epoch
# docs/retraining.md: three seeds of configs/retrain-synth.json on the generated songs scored 5.30, 8.75 and
# 9.73 dB on the gate (up to 4.43 dB apart); a gain within that is seed luck, not a better model
DEFAULT_MIN_IMPROVEMENT = 4.5
# the floor's margin: untrained (one-step) models score 4.0 dB (generated songs) and 4.6 dB (MUSDB18-7 valid)
# above the mixture, trained ones 7.5 to 13.2 dB
DEFAULT_MIN_OVER_MIXTURE = 6.0
EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_KEPT = 0, 1, 2, 3


class InputError(ValueError):
    """An input the chain needs is missing or unusable; found before any expensive work."""


def new_version() -> str:
    """A sortable version name: the UTC time of the run."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def check_version(version: str) -> str:
    if not VERSION_PATTERN.match(version or ""):
        raise InputError(f"version {version!r} must match {VERSION_PATTERN.pattern}")
    return version


def version_dir(registry: str, version: str) -> str:
    return storage.join(storage.absolute(registry), VERSIONS, check_version(version))


def model_dir(registry: str, version: str) -> str:
    return storage.join(version_dir(registry, version), MODEL)


def has_model(registry: str, version: str) -> bool:
    return storage.exists(storage.join(model_dir(registry, version), CONFIG_FILE))


def current_version(registry: str) -> str | None:
    """The promoted version, or None when nothing has been promoted yet."""
    path = storage.join(storage.absolute(registry), CURRENT_FILE)
    return check_version(storage.read_text(path).strip()) if storage.exists(path) else None


def read_json(path: str) -> dict:
    return json.loads(storage.read_text(path))


def write_json(path: str, data: dict) -> None:
    storage.write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- check: every input, before preprocessing or training ---------------------------------------------

def load_config(path: str):
    """The training config (a config.json or a folder holding one, local or gs://); defaults when ''."""
    if not path:
        return Config()
    in_folder = storage.join(path, CONFIG_FILE)
    file = in_folder if storage.exists(in_folder) else path
    try:
        return Config.from_json(storage.read_text(file))
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise InputError(f"config {file} cannot be used: {error}") from error


def find_songs(songs: str, validation: tuple[str, ...]) -> list:
    """The tracks under a songs root with the splits preprocess gives them (audio.musdb.find_tracks)."""
    from audio.musdb import find_tracks

    root = storage.absolute(songs).rstrip("/")
    if not storage.is_remote(root) and not Path(root).is_dir():
        raise InputError(f"songs folder {root} does not exist")
    try:
        paths = storage.list_files(root)
    except OSError as error:  # no such bucket, no access
        raise InputError(f"cannot list the songs under {root}: {error}") from error
    tracks = find_tracks(root, paths, validation)
    if not tracks:
        raise InputError(f"no songs under {root} (MUSDB layout: train/ and test/ with .stem.mp4 or stem folders)")
    return tracks


def select_tracks(tracks: list, split: str, names: list[str] | None) -> list:
    wanted = [name.lower() for name in names or ()]
    return [track for track in tracks
            if track.split == split and (not wanted or any(w in track.name.lower() for w in wanted))]


def check_writable(folder: str, what: str) -> None:
    probe = storage.join(storage.absolute(folder), f".write-check-{uuid.uuid4().hex}")
    try:
        storage.write_text_atomic(probe, "ok\n")
    except (OSError, ValueError) as error:
        raise InputError(f"{what} {folder} is not writable: {error}") from error
    storage.remove(probe)


def check_inputs(songs: str, registry: str, config: str = "", split: str = "test",
                 tracks: list[str] | None = None, work: str = "", version: str = "", force: bool = False) -> dict:
    """Everything the chain needs, checked cheaply; raises InputError naming the first problem."""
    from audio.musdb import MUSDB_VALIDATION_TRACKS

    check_split(split)
    loaded = load_config(config)
    named = tuple(loaded.data.validation_tracks)
    found = find_songs(songs, named or MUSDB_VALIDATION_TRACKS)  # the validation songs preprocess picks
    by_split = {name: [track.name for track in found if track.split == name] for name in ("train", "valid", "test")}
    if not by_split["train"]:
        raise InputError(f"no training songs under {songs} (its train/ folder)")
    gate = select_tracks(found, split, tracks)
    if not gate:
        raise InputError(f"no {split!r} songs under {songs}" + (f" matching {tracks}" if tracks else "")
                         + f" to score the models on: the gate needs held-out songs in its {split}/ folder")
    seen = sorted({track.name for track in gate} & set(by_split["train"] + by_split["valid"]))
    if seen:
        raise InputError(f"{seen} are both training and {split!r} songs: the gate must score unseen songs")
    if any(track.container for track in found) and not shutil.which("ffmpeg"):
        raise InputError("the songs are .stem.mp4 files, which need ffmpeg on PATH")
    check_writable(registry, "registry")
    if work:
        check_writable(work, "work folder")
    if version and has_model(registry, check_version(version)):
        raise InputError(f"version {version} already exists in {registry}")
    current = current_version(registry)
    if current is not None and not has_model(registry, current) and not force:
        raise InputError(f"the current model {current} has no exported model in {model_dir(registry, current)}, "
                         "so no candidate could be compared with it: repair the registry or pass --force")
    missing = sorted(set(named) - set(by_split["valid"]))
    return {"songs": songs, "splits": {name: len(names) for name, names in by_split.items()},
            "gate_tracks": sorted(track.name for track in gate), "current": current,
            "missing_validation_tracks": missing}


def check_split(split: str) -> str:
    if split not in HELD_OUT_SPLITS:
        raise InputError(f"the gate scores held-out songs only ({', '.join(HELD_OUT_SPLITS)}), not {split!r}: "
                         "train and valid songs trained the candidate or chose its epoch")
    return split


# --- evaluate -----------------------------------------------------------------------------------------

def score_model(model: str, songs: str, split: str, tracks: list[str] | None, output: str,
                reference: str | None = None) -> dict:
    """One exported model (local or remote) on local songs: its SDR and the mixture's, per target."""
    from trainer.evaluate import evaluate  # TensorFlow and museval: only when really scoring

    summary = evaluate(songs, storage.stage_tree(model), split, output, tracks, reference_scores=reference)
    scores = summary["scores"]
    return {"per_target": {target: _finite(scores["model"][target][METRIC]) for target in summary["targets"]},
            "baseline": {target: _finite(scores[BASELINE][target][METRIC]) for target in summary["targets"]},
            "tracks": summary["tracks"], "model_version": summary["model_version"]}


def score_champion(registry: str, champion: str, songs: str, split: str, tracks: list[str] | None,
                   output: str, reference: str, scored: list[str]) -> dict:
    """The current model's scores, or the reason it could not be scored (the gate then blocks)."""
    try:
        result = score_model(model_dir(registry, champion), songs, split, tracks, output, reference)
    except Exception as error:  # noqa: BLE001 - any failure (missing, corrupt, unloadable) is recorded
        return {"version": champion, "per_target": None, "error": f"{type(error).__name__}: {error}"}
    if result["tracks"] != scored:
        return {"version": champion, "per_target": None,
                "error": f"scored on {result['tracks']}, the candidate on {scored}"}
    return {"version": champion, "per_target": result["per_target"], "tracks": result["tracks"],
            "model_version": result["model_version"]}


def evaluate_version(registry: str, version: str, songs: str, split: str = "test",
                     tracks: list[str] | None = None) -> dict:
    """Score the candidate, the current model (if any) and the mixture on held-out songs; write evaluation.json."""
    check_split(split)
    if not has_model(registry, version):
        raise InputError(f"no exported model in {model_dir(registry, version)}")
    champion = current_version(registry)
    local_songs = stage_songs(songs, split, tracks)
    with tempfile.TemporaryDirectory(prefix="retrain-eval-") as work:
        candidate = score_model(model_dir(registry, version), local_songs, split, tracks, f"{work}/candidate")
        rival = None
        if champion is not None and champion != version:  # mixture and oracle reused: the same songs
            rival = score_champion(registry, champion, local_songs, split, tracks, f"{work}/champion",
                                   f"{work}/candidate", candidate["tracks"])
    evaluation = {
        "version": version, "metric": METRIC, "songs": songs, "split": split, "held_out": True,
        "tracks": candidate["tracks"],
        "candidate": {"version": version, "per_target": candidate["per_target"],
                      "model_version": candidate["model_version"]},
        "baseline": {"method": BASELINE, "per_target": candidate["baseline"]},
        "champion": rival, "evaluated_at": utc_now(),
    }
    write_json(storage.join(version_dir(registry, version), EVALUATION_FILE), evaluation)
    return evaluation


def stage_songs(songs: str, split: str, tracks: list[str] | None) -> str:
    """trainer.evaluate reads local files: copy just the scored songs of a remote root (local ones pass)."""
    root = storage.absolute(songs).rstrip("/")
    if not storage.is_remote(root):
        return root
    local = tempfile.mkdtemp(prefix="retrain-songs-")
    for track in select_tracks(find_songs(root, ()), split, tracks):
        for path in [track.container] if track.container else [path for _, path in track.files]:
            target = Path(local, path[len(root) + 1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(storage.read_bytes(path))
    return local


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


# --- the gate -----------------------------------------------------------------------------------------

def mean_score(per_target: dict[str, float | None] | None, targets: list[str]) -> float | None:
    """Mean SDR over `targets`; None when any of them could not be scored (no silent free pass)."""
    values = [(per_target or {}).get(target) for target in targets]
    if not values or any(value is None for value in values):
        return None
    return sum(values) / len(values)


def decide(evaluation: dict, current: str | None, min_improvement: float = DEFAULT_MIN_IMPROVEMENT,
           min_over_mixture: float = DEFAULT_MIN_OVER_MIXTURE, force: bool = False) -> dict:
    """The gate: promote or not, with the scores and the reason. Pure: reads nothing, writes nothing."""
    candidate, champion = evaluation["candidate"], evaluation.get("champion")
    version = candidate["version"]
    compared_with = champion["version"] if champion else None
    decision = {"version": version, "current_before": current, "metric": evaluation["metric"],
                "split": evaluation.get("split"), "min_improvement": min_improvement,
                "min_over_mixture": min_over_mixture, "force": force, "promoted": False}

    def verdict(promoted: bool, reason: str) -> dict:
        return {**decision, "promoted": promoted, "reason": reason}

    if version == current:
        return verdict(False, f"{version} is already the current model")
    if compared_with != current:
        return verdict(False, f"stale evaluation: it compared against {compared_with}, but the current model "
                              f"is now {current}; evaluate again")
    if evaluation.get("split") not in HELD_OUT_SPLITS or "baseline" not in evaluation:
        return verdict(False, f"scored on split {evaluation.get('split')!r}, not on held-out songs with the "
                              "mixture baseline; evaluate again")
    targets = sorted(candidate["per_target"])
    new = mean_score(candidate["per_target"], targets)
    floor = mean_score(evaluation["baseline"]["per_target"], targets)
    decision.update(targets=targets, candidate_score=new, mixture_score=floor)
    if new is None or floor is None:
        return verdict(False, "the candidate (or the mixture baseline) could not be scored on every target")
    decision["floor"] = floor + min_over_mixture
    if new < floor + min_over_mixture:
        return verdict(False, f"{new:.3f} dB is below the floor {floor + min_over_mixture:.3f} dB "
                              f"(the mixture's {floor:.3f} dB + {min_over_mixture} dB)")
    if champion is None:
        return verdict(True, f"no current model; {new:.3f} dB clears the floor {floor + min_over_mixture:.3f} dB")
    old = mean_score(champion.get("per_target"), targets)
    why = unscorable(champion, targets, old)
    decision["current_score"] = None if why else old
    if why:
        if force:
            return verdict(True, f"forced: the current model {compared_with} could not be scored ({why}); "
                                 f"{new:.3f} dB clears the floor")
        return verdict(False, f"the current model {compared_with} could not be scored ({why}); "
                              "pass --force to promote on the floor alone")
    if new > old + min_improvement:
        return verdict(True, f"{new:.3f} dB beats {old:.3f} dB by more than {min_improvement} dB")
    return verdict(False, f"{new:.3f} dB does not beat {old:.3f} dB by more than {min_improvement} dB")


def unscorable(champion: dict, targets: list[str], score: float | None) -> str:
    """Why the current model's evaluation cannot be compared with the candidate's ('' when it can)."""
    theirs = sorted(champion.get("per_target") or ())
    if champion.get("error") or not theirs:
        return champion.get("error") or "it has no scores"
    if theirs != targets:
        return f"it separates {theirs}, the candidate {targets}"
    return "a target has no score" if score is None else ""


def promote(registry: str, version: str, min_improvement: float = DEFAULT_MIN_IMPROVEMENT,
            min_over_mixture: float = DEFAULT_MIN_OVER_MIXTURE, force: bool = False) -> dict:
    """Apply the gate to a version's evaluation.json; move `current` only when it promotes."""
    folder = version_dir(registry, version)
    if not has_model(registry, version):
        raise InputError(f"no exported model in {storage.join(folder, MODEL)}")
    evaluation_path = storage.join(folder, EVALUATION_FILE)
    if not storage.exists(evaluation_path):
        raise InputError(f"{evaluation_path} is missing: run `atsep retrain evaluate` first")
    decision = decide(read_json(evaluation_path), current_version(registry), min_improvement,
                      min_over_mixture, force)
    decision["decided_at"] = utc_now()
    write_json(storage.join(folder, DECISION_FILE), decision)
    if decision["promoted"]:
        storage.write_text_atomic(storage.join(storage.absolute(registry), CURRENT_FILE), version + "\n")
    return decision


# --- the local chain ----------------------------------------------------------------------------------

def run_chain(args: argparse.Namespace, beam_args: list[str]) -> dict:
    """check -> preprocess (Beam, local runner unless told) -> train (local trainer) -> evaluate -> promote."""
    from beam_jobs import preprocess
    from beam_jobs.jsonl_shards import DEAD_LETTER, SUFFIX
    from beam_jobs.options import EXIT_INPUTS_FAILED
    from trainer import task

    version = check_version(args.version or new_version())
    found = check_inputs(args.songs, args.registry, args.config, args.split, args.tracks, args.work, version,
                         args.force)
    report_check(found)
    work = storage.join(storage.absolute(args.work), version)
    records = storage.join(work, "records")
    config = ["--config", args.config] if args.config else []
    status = preprocess.main(["--input", args.songs, "--output", records, *config, *beam_args])
    if status == EXIT_INPUTS_FAILED:  # the run completed; unusable songs are in the dead letter, not trained on
        print(f"retrain: some songs could not be preprocessed, see {storage.join(records, DEAD_LETTER)}-*{SUFFIX}",
              flush=True)
    elif status != EXIT_OK:
        raise RuntimeError(f"preprocess failed (exit status {status})")
    overrides = [item for flag in ("epochs", "steps_per_epoch", "seed") if getattr(args, flag) is not None
                 for item in (f"--{flag}", str(getattr(args, flag)))]
    if task.main(["--data", records, "--model_dir", model_dir(args.registry, version),
                  "--checkpoint_dir", storage.join(work, "checkpoints"),
                  "--tensorboard_dir", storage.join(work, "logs"), *config, *overrides,
                  "--data_description", f"retrain {version} from {args.songs}"]) != 0:
        raise RuntimeError("training failed")
    evaluate_version(args.registry, version, args.songs, args.split, args.tracks)
    return promote(args.registry, version, args.min_improvement, args.min_over_mixture, args.force)


def report_check(found: dict) -> None:
    splits = found["splits"]
    print(f"retrain check: {splits['train']} train, {splits['valid']} valid, {splits['test']} test songs; "
          f"the gate scores {len(found['gate_tracks'])}; current model: {found['current'] or 'none'}", flush=True)
    if found["missing_validation_tracks"]:
        print(f"retrain check: the config's validation songs {found['missing_validation_tracks']} are not "
              "among the training songs: the trainer keeps its last epoch", flush=True)
    elif not splits["valid"]:
        print("retrain check: no validation songs: the trainer keeps its last epoch", flush=True)


# --- command line -------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The stage and its options; the rest (run only) goes to the preprocess job's Beam runner."""
    parser = argparse.ArgumentParser(prog="atsep retrain", description=__doc__.split("\n")[0],
                                     epilog="exit status: 0 promoted or done, 3 not promoted, 2 invalid input, "
                                            "1 failure")
    stages = parser.add_subparsers(dest="stage", required=True)
    run = stages.add_parser("run", help="the whole chain, locally")
    check = stages.add_parser("check", help="check every input of the chain; preprocess and train nothing")
    evaluate = stages.add_parser("evaluate", help="score a version, the current model and the mixture")
    promote_stage = stages.add_parser("promote", help="the gate: move `current` if the version is better")
    status = stages.add_parser("status", help="print the current version and its model folder")
    run.add_argument("--songs", default="data/musdb-synth", help="MUSDB-layout songs, local or gs://")
    run.add_argument("--work", default="out/retrain", help="records, checkpoints and logs per version")
    for stage in (check, evaluate):
        stage.add_argument("--songs", required=True, help="MUSDB-layout songs, local or gs://")
    for stage in (run, check):
        stage.add_argument("--config", default="", help="config.json for preprocess and training")
    for flag in ("epochs", "steps_per_epoch", "seed"):
        run.add_argument(f"--{flag}", type=int, help=f"overrides training.{flag}")
    for stage in (run, check, evaluate, promote_stage, status):
        stage.add_argument("--registry", default="models/registry", help="registry folder, local or gs://")
    for stage in (run, evaluate, promote_stage):
        stage.add_argument("--version", default="" if stage is run else None, required=stage is not run,
                           help="version name" + (" (default: the UTC time)" if stage is run else ""))
    for stage in (run, check, evaluate):
        stage.add_argument("--split", default=HELD_OUT_SPLITS[0], choices=HELD_OUT_SPLITS,
                           help="the held-out songs that score the models")
        stage.add_argument("--tracks", action="append", metavar="NAME", help="only songs whose name holds NAME")
    for stage in (run, promote_stage):
        stage.add_argument("--min_improvement", type=float, default=DEFAULT_MIN_IMPROVEMENT,
                           help="dB of mean SDR the candidate must gain over the current model "
                                "(default: above the measured seed-to-seed spread, docs/retraining.md)")
        stage.add_argument("--min_over_mixture", type=float, default=DEFAULT_MIN_OVER_MIXTURE,
                           help="the floor: dB of mean SDR above the mixture-as-estimate score on the same songs")
        stage.add_argument("--kept_exit_code", type=int, default=EXIT_KEPT, metavar="N",
                           help="exit status when the gate keeps the current model (the pipeline uses 0)")
    for stage in (run, check, promote_stage):
        stage.add_argument("--force", action="store_true",
                           help="promote even when the current model cannot be scored (the floor still holds)")
    args, rest = parser.parse_known_args(argv)
    if rest and args.stage != "run":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    for name in ("min_improvement", "min_over_mixture"):
        if not math.isfinite(getattr(args, name, 0.0)) or getattr(args, name, 0.0) < 0:
            parser.error(f"--{name} must be a finite number of dB, at least 0")
    return args, rest


def main(argv: list[str] | None = None) -> int:
    args, beam_args = parse_args(argv)
    try:
        if args.stage == "status":
            current = current_version(args.registry)
            print(f"{current} {model_dir(args.registry, current)}" if current else "no current model")
            return EXIT_OK
        if args.stage == "check":
            report_check(check_inputs(args.songs, args.registry, args.config, args.split, args.tracks,
                                      force=args.force))
            return EXIT_OK
        if args.stage == "evaluate":
            print(json.dumps(evaluate_version(args.registry, args.version, args.songs, args.split, args.tracks),
                             indent=2))
            return EXIT_OK
        decision = (run_chain(args, beam_args) if args.stage == "run" else
                    promote(args.registry, args.version, args.min_improvement, args.min_over_mixture, args.force))
    except InputError as error:
        print(f"atsep retrain: invalid input: {error}", file=sys.stderr)
        return EXIT_INVALID
    except (OSError, ValueError, RuntimeError) as error:
        print(f"atsep retrain: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    verdict = "promoted" if decision["promoted"] else "not promoted, kept the current model"
    print(f"retrain {decision['version']}: {verdict} ({decision['reason']}); current: "
          f"{current_version(args.registry)}")
    return EXIT_OK if decision["promoted"] else args.kept_exit_code


if __name__ == "__main__":
    sys.exit(main())
