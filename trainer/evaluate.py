"""`atsep evaluate`: BSSEval v4 scores of a separator on a MUSDB-layout folder, as in SiSEC 2018.

Metrics come from museval (`museval.evaluate`: bss_eval_images v4, distortion filters over the whole
track, 1-second windows and hops, 512-tap filters), aggregated as SiSEC 2018 did: per track the
median over frames (frames where any source or estimate is silent are NaN and skipped), then the
median of those per-track medians over tracks. SDR is museval's figure as it stands, taken without its
distortion filters (frame_sdr: in v4 images mode it needs none); ISR, SIR and SAR come from a museval call
with each reference dithered 60 dB below its own power, because museval's projection is ill-conditioned on
band-limited (AAC-coded) stems and gives meaningless figures there (DITHER_DB).

Beside the model, every track is scored for two reference methods:
  mixture  the mixture itself as every estimate (the floor);
  oracle   ideal ratio masks from the true stems (sigsep's IRM1: |target| / sum of |stem| over all
           stems, STFT n_fft 4096, hop 1024 at the track's rate) applied to the mixture (the ceiling).

Each method's stems (the model's heads and the residual, i.e. the sum of the other stems) are scored
jointly against the true stems, so SIR and SAR measure leakage between exactly the stems the model
produces (as musdb's `eval_mus_track` scores a submission's own targets). A reference or estimate
that is silent over the whole track cannot be scored (museval refuses it): it is left out of the
joint call and reported as NaN (null in JSON).

Outputs: OUT/tracks/<track>.json, OUT/summary.json, OUT/summary.md and a table on stdout.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
import warnings
from pathlib import Path

import numpy as np

from audio.codec import DecodeError
from audio.musdb import Track, TrackError, find_tracks, load_track
from common.progress import progress
from model import dsp
from model.config import MIXTURE, RESIDUAL, Config
from model.model_dir import BUNDLED_MODEL_DIR
from reports.evaluation import SUMMARY_FILE, TABLE_METRICS, TRACKS_DIR, write_evaluation_report

METHODS = ("model", "mixture", "oracle")
METRICS = ("SDR", "SIR", "SAR", "ISR")
SPLITS = ("train", "valid", "test", "all")
WINDOW_SECONDS = 1.0  # SiSEC 2018: win = hop = 1 s
ORACLE_N_FFT = 4096
ORACLE_HOP = 1024
# ISR, SIR and SAR rest on museval's distortion filters: a least-squares fit over 512 delays of every
# reference channel. Where the references have (next to) no energy, as AAC-coded stems above their
# cut-off, that system is ill-conditioned and the three figures are numerical noise (-8 dB SIR for an
# estimate with 5 dB SDR). They are taken with the references dithered this far below their own power, a
# ridge on the fit; SDR needs no projection in v4 and comes from the references as they are.
DITHER_DB = -60.0
LEGEND = ("BSSEval v4 (museval), 1 s windows; median over frames, then over tracks, in dB (higher is better). "
          "mixture: the mixture as every estimate (the floor); oracle: ideal ratio masks from the true "
          f"stems, STFT {ORACLE_N_FFT}/{ORACLE_HOP} (the ceiling). SIR, SAR and ISR are taken against references "
          f"dithered {-DITHER_DB:.0f} dB down, where museval's own projection is ill-conditioned (docs/model.md).")

Scores = dict[str, dict[str, float]]  # target -> metric -> dB

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="atsep evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", metavar="ROOT", help="local MUSDB-layout folder (train/ and test/ inside)")
    parser.add_argument("--model_dir", default=BUNDLED_MODEL_DIR,
                        help="exported model folder (default: the model bundled with the package)")
    parser.add_argument("--split", default="valid", choices=SPLITS,
                        help="which songs: musdb's train/valid/test, or all (default: valid)")
    parser.add_argument("--tracks", action="append", default=None, metavar="NAME",
                        help="keep songs whose name contains NAME (case-insensitive); repeatable")
    parser.add_argument("--output", default="out/eval", help="folder for the JSON and Markdown results")
    parser.add_argument("--targets", nargs="+", default=None, metavar="STEM",
                        help="stems to report (default: the model's heads and the residual)")
    parser.add_argument("--reference_scores", metavar="DIR",
                        help="an earlier evaluation's output folder: reuse its mixture and oracle scores of "
                             "the same songs (they do not depend on the model) instead of recomputing them")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        summary = evaluate(args.root, args.model_dir, args.split, args.output, args.tracks,
                           targets=args.targets, reference_scores=args.reference_scores)
    except (ValueError, OSError) as error:  # no songs, unknown targets, no model folder
        log.error("%s", error)
        return 1
    print(format_table(summary["scores"], summary["targets"]))
    print(f"\n{LEGEND}\n{summary['tracks_scored']} track(s); results in {args.output}")
    return 0


def evaluate(root: str, model_dir: str, split: str, output: str, tracks: list[str] | None = None,
             *, targets: list[str] | None = None, reference_scores: str | None = None) -> dict:
    """Score the model, the mixture and the oracle on `split` of `root`; write and return the summary.

    summary["scores"][method][target][metric] is the median over songs in dB (NaN where no song could
    be scored; null in the JSON files). Songs that cannot be decoded are skipped and listed.
    """
    from model.separator import Separator  # TensorFlow: only when a model is really evaluated

    heads = tuple(Config.load(model_dir).network.heads)
    targets = _check_targets(targets, heads)
    chosen = select_tracks(root, split, tracks)
    if not chosen:
        raise ValueError(f"no {split!r} songs under {root!r}" + (f" matching {tracks}" if tracks else ""))
    separator = Separator.load(model_dir)
    out = Path(output)
    (out / TRACKS_DIR).mkdir(parents=True, exist_ok=True)
    per_track, skipped = {}, {}
    for number, track in enumerate(progress(chosen, desc="evaluate", unit="track"), 1):
        started = time.monotonic()
        try:
            reused = _reference_scores(reference_scores, track.name, heads)
            per_track[track.name] = evaluate_track(track, separator, heads, reused)
        except (TrackError, DecodeError) as error:
            log.warning("skipping %s: %s", track.name, error)
            skipped[track.name] = str(error)
            continue
        _write_json(out / TRACKS_DIR / f"{track.name}.json",
                    {"track": track.name, "split": track.split, "dither_db": DITHER_DB,
                     "scores": per_track[track.name]})
        log.info("[%d/%d] %s scored in %.1f s", number, len(chosen), track.name, time.monotonic() - started)
    summary = {
        "root": str(root), "split": split, "model_dir": str(model_dir), "model_version": separator.version,
        "methods": list(METHODS), "targets": list(targets), "metrics": list(METRICS),
        "tracks_scored": len(per_track), "tracks": sorted(per_track), "skipped": skipped,
        "scores": summarise(per_track, targets), "legend": LEGEND,
    }
    _write_json(out / SUMMARY_FILE, summary)
    (out / "summary.md").write_text(f"{format_table(summary['scores'], targets, markdown=True)}\n\n"
                                    f"{LEGEND} {len(per_track)} track(s) of split `{split}`, "
                                    f"model `{separator.version}`.\n")
    write_evaluation_report(str(out))
    return summary


def select_tracks(root: str, split: str, names: list[str] | None = None) -> list[Track]:
    """The songs of `split` ('all' for every split) under a local root, filtered by name substrings."""
    base = Path(root)
    if not base.is_dir():
        raise ValueError(f"not a folder: {root}")
    paths = sorted(path.as_posix() for path in base.rglob("*") if path.is_file())
    found = find_tracks(base.as_posix(), paths)
    wanted = [name.lower() for name in names or ()]
    return [track for track in found
            if split in ("all", track.split) and (not wanted or any(w in track.name.lower() for w in wanted))]


def _check_targets(targets: list[str] | None, heads: tuple[str, ...]) -> tuple[str, ...]:
    stems = (*heads, RESIDUAL)
    unknown = sorted(set(targets or ()) - set(stems))
    if unknown:
        raise ValueError(f"unknown targets {unknown}: the model separates {list(stems)}")
    return tuple(targets) if targets else stems


def _reference_scores(folder: str | None, track: str, heads: tuple[str, ...]) -> dict[str, Scores]:
    """The mixture and oracle scores an earlier evaluation wrote for this song and these stems, if any, and
    scored as now (one from before the references' dither has other SIR, SAR and ISR: it is not reused)."""
    path = Path(folder) / TRACKS_DIR / f"{track}.json" if folder else None
    if path is None or not path.is_file():
        return {}
    earlier = json.loads(path.read_text())
    if earlier.get("dither_db") != DITHER_DB:
        log.info("not reusing %s: scored without the references' dither", path)
        return {}
    scores = earlier.get("scores", {})
    stems = {*heads, RESIDUAL}
    return {method: {stem: {metric: math.nan if value is None else value for metric, value in values.items()}
                     for stem, values in scores[method].items()}
            for method in ("mixture", "oracle") if method in scores and set(scores[method]) == stems}


def evaluate_track(track: Track, separator, heads: tuple[str, ...],
                   reused: dict[str, Scores] | None = None) -> dict[str, Scores]:
    """Per-method, per-stem medians over frames for one song (methods in `reused` are taken as given);
    raises TrackError if it cannot be scored."""
    stems, rate = load_track(track)
    missing = sorted(set(heads) - set(stems))
    if missing:
        raise TrackError(f"no reference for the model's heads {missing}")
    mix = stems[MIXTURE]
    references = reference_stems(stems, heads)
    reused = reused or {}
    estimates = {
        "model": lambda: separator.separate(mix, rate),
        "mixture": lambda: {target: mix for target in references},
        "oracle": lambda: oracle_irm(stems, heads, ORACLE_N_FFT, ORACLE_HOP),
    }
    return {method: reused[method] if method in reused else score(references, estimates[method](), rate)
            for method in METHODS}


def reference_stems(stems: dict[str, np.ndarray], heads: tuple[str, ...]) -> dict[str, np.ndarray]:
    """True waveforms of the model's stems: each head, and the residual as the sum of all other stems."""
    others = [waveform for stem, waveform in stems.items() if stem not in (MIXTURE, *heads)]
    residual = np.sum(others, axis=0) if others else np.zeros_like(stems[MIXTURE])
    return {**{head: stems[head] for head in heads}, RESIDUAL: residual}


def oracle_irm(stems: dict[str, np.ndarray], heads: tuple[str, ...],
               n_fft: int, hop: int) -> dict[str, np.ndarray]:
    """Ideal ratio masks (sigsep-mus-oracle IRM1) applied to the mixture STFT, one waveform per stem.

    Every true stem contributes its magnitude to the denominator; the residual's mask is the sum of
    the masks of the non-head stems, so the masks sum to one and the estimates to the mixture.
    """
    mix = stems[MIXTURE]
    magnitudes = {stem: np.abs(dsp.stft(waveform, n_fft, hop)) for stem, waveform in stems.items()
                  if stem != MIXTURE}
    total = np.sum(list(magnitudes.values()), axis=0) + np.finfo(np.float32).eps
    others = [magnitude for stem, magnitude in magnitudes.items() if stem not in heads]
    target_magnitudes = {**{head: magnitudes[head] for head in heads},
                         RESIDUAL: np.sum(others, axis=0) if others else np.zeros_like(total)}
    spec = dsp.stft(mix, n_fft, hop)
    return {target: dsp.istft(spec * (magnitude / total), n_fft, hop, mix.shape[0])
            for target, magnitude in target_magnitudes.items()}


def score(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray], rate: int) -> Scores:
    """BSSEval v4 medians over 1-second frames, every stem of `references` scored jointly.

    Stems whose reference or estimate is silent over the whole song get NaN (museval refuses them).
    """
    import museval  # slow to import (pandas, musdb): only when scoring

    scorable = [stem for stem in references
                if _audible(references[stem]) and _audible(estimates[stem])]
    result = {stem: dict.fromkeys(METRICS, math.nan) for stem in references}
    if not scorable:
        return result
    window = int(WINDOW_SECONDS * rate)
    true = [np.asarray(references[stem], np.float64) for stem in scorable]
    estimated = [np.asarray(estimates[stem], np.float64) for stem in scorable]
    sdr = frame_sdr(true, estimated, window)
    _, isr, sir, sar = museval.evaluate(dithered(true), estimated, win=window, hop=window, mode="v4")
    # the frames museval skips (a source silent in them) stay skipped: dither would make them scorable
    isr, sir, sar = (np.where(np.isnan(sdr), np.nan, frames) for frames in (isr, sir, sar))
    for index, stem in enumerate(scorable):
        frames = {"SDR": sdr, "SIR": sir, "SAR": sar, "ISR": isr}
        result[stem] = {metric: nan_median(frames[metric][index]) for metric in METRICS}
    return result


def frame_sdr(references: list[np.ndarray], estimates: list[np.ndarray], window: int) -> np.ndarray:
    """museval's v4 SDR, (sources, windows), without its projections. In bss_eval_images the spatial,
    interference and artefact errors add up to the estimate minus the reference, so a window's SDR is
    10 log10(|reference|^2 / |estimate - reference|^2): the distortion filters, which cost as much as the
    whole of a museval call, are needed only for ISR, SIR and SAR. Windows (museval's Framing) where any
    reference or estimate is silent are NaN, as museval leaves them."""
    import museval
    from museval.metrics import Framing

    references, estimates = museval.pad_or_truncate(np.asarray(references), np.asarray(estimates))
    framer = Framing(window, window, references.shape[1])
    sdr = np.full((len(references), framer.nwin), np.nan)
    for index, frame in enumerate(framer):
        true, estimated = references[:, frame], estimates[:, frame]
        if all(map(_audible, true)) and all(map(_audible, estimated)):
            with np.errstate(divide="ignore"):  # a perfect estimate: +inf, as museval's _safe_db
                sdr[:, index] = 10 * np.log10(np.sum(true ** 2, axis=(1, 2))
                                              / np.sum((estimated - true) ** 2, axis=(1, 2)))
    return sdr


def dithered(references: list[np.ndarray]) -> list[np.ndarray]:
    """Each reference plus white noise DITHER_DB below its own power (seeded: the same every call)."""
    rng = np.random.default_rng(0)
    return [reference + rng.standard_normal(reference.shape) * math.sqrt(np.mean(reference ** 2))
            * 10 ** (DITHER_DB / 20) for reference in references]


def _audible(waveform: np.ndarray) -> bool:
    # museval's own test: a source is silent when its channel sum is zero at every sample
    return bool(np.any(np.sum(waveform, axis=1) != 0))


def nan_median(values) -> float:
    """Median ignoring NaN (museval's frame aggregation, pandas' track aggregation); NaN if all are."""
    array = np.asarray([math.nan if value is None else value for value in np.ravel(values)], np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices are expected: silent stems
        return float(np.nanmedian(array)) if array.size else math.nan


def summarise(per_track: dict[str, dict[str, Scores]], targets: tuple[str, ...]) -> dict[str, Scores]:
    """Median over tracks of the per-track medians, per method, target and metric."""
    return {method: {target: {metric: nan_median([scores[method][target][metric]
                                                  for scores in per_track.values()])
                              for metric in METRICS}
                     for target in targets}
            for method in METHODS}


def format_table(scores: dict[str, Scores], targets: list[str] | tuple[str, ...], markdown: bool = False) -> str:
    """Rows: methods; columns: target x SDR SIR SAR (dB, one decimal)."""
    header = ["method"] + [f"{target} {metric}" for target in targets for metric in TABLE_METRICS]
    rows = [[method] + [_db(scores[method][target][metric]) for target in targets for metric in TABLE_METRICS]
            for method in scores]
    if markdown:
        lines = [header, ["---"] + ["---:"] * (len(header) - 1), *rows]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)
    widths = [max(len(line[column]) for line in [header, *rows]) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                               for column, (cell, width) in enumerate(zip(line, widths)))
                     for line in [header, *rows])


def _db(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.1f}"


def _write_json(path: Path, data: dict) -> None:
    """Strict JSON: NaN and infinities become null."""
    path.write_text(json.dumps(_finite_or_none(data), indent=2, allow_nan=False) + "\n")


def _finite_or_none(data):
    if isinstance(data, dict):
        return {key: _finite_or_none(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite_or_none(value) for value in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


if __name__ == "__main__":
    raise SystemExit(main())
