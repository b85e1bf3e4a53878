"""The report of an evaluation: EVAL/index.html with the SDR/SIR/SAR table and per-track charts.

Reads what `atsep evaluate` writes: EVAL/summary.json ({split, model_version, methods, targets,
metrics, tracks, skipped, tracks_scored, scores: {method: {target: {metric: dB or null}}}, legend: how
the scores were taken}) and
EVAL/tracks/<track>.json ({track, split, scores: same shape, one song}). The model's rows sit beside
the two references scored on the same songs: the mixture itself (the floor) and the oracle ideal
ratio mask (the ceiling).
"""
from __future__ import annotations

import json

from common import storage
from reports.html import INDEX_FILE, SUMMARY_FILE, ReadText, WriteText, esc, number, page, read_optional
from reports.svg import bar_chart

TRACKS_DIR = "tracks"
TABLE_METRICS = ("SDR", "SIR", "SAR")


def _order(preferred: object, found: list[str]) -> list[str]:
    listed = [str(name) for name in preferred] if isinstance(preferred, list) else []
    return listed + [name for name in found if name not in listed]


def _methods_targets(summary: dict, scores: dict) -> tuple[list[str], list[str]]:
    methods = _order(summary.get("methods"), list(scores))
    found_targets = [t for by_target in scores.values() if isinstance(by_target, dict) for t in by_target]
    return methods, _order(summary.get("targets"), list(dict.fromkeys(found_targets)))


def _value(scores: dict, method: str, target: str, metric: str) -> float | None:
    value = ((scores.get(method) or {}).get(target) or {}).get(metric)
    return value if number(value) != "n/a" else None


def scores_table(scores: dict, methods: list[str], targets: list[str]) -> str:
    """Rows: methods; columns: target x SDR SIR SAR, with a two-row header."""
    top = "".join(f'<th colspan="{len(TABLE_METRICS)}">{esc(target)}</th>' for target in targets)
    sub = "".join(f'<th class="num">{metric}</th>' for _ in targets for metric in TABLE_METRICS)
    rows = "".join(
        f"<tr><th>{esc(method)}</th>" + "".join(
            f'<td class="num">{number(_value(scores, method, target, metric))}</td>'
            for target in targets for metric in TABLE_METRICS) + "</tr>\n"
        for method in methods)
    return (f'<table>\n<tr><th rowspan="2">method</th>{top}</tr>\n<tr>{sub}</tr>\n{rows}</table>\n')


def metric_chart(scores: dict, methods: list[str], targets: list[str], title: str, metric: str = "SDR",
                 width: int = 520) -> str:
    """Grouped bars of one metric: a group per target, a bar per method."""
    series = {method: [_value(scores, method, target, metric) for target in targets] for method in methods}
    return bar_chart(targets, series, title, f"{metric} (dB)", width=width)


def _track_scores(entry: object) -> dict:
    """A track's scores from its tracks/<name>.json content (or from the scores themselves)."""
    if isinstance(entry, dict) and isinstance(entry.get("scores"), dict):
        return entry["scores"]
    return entry if isinstance(entry, dict) else {}


def render_evaluation(summary: dict, per_track: dict[str, dict]) -> str:
    """The whole page: run facts, the median table and chart, then one chart and table per track."""
    scores = summary.get("scores") if isinstance(summary.get("scores"), dict) else {}
    methods, targets = _methods_targets(summary, scores)
    skipped = summary.get("skipped") if isinstance(summary.get("skipped"), dict) else {}
    facts = (f"<p>{esc(summary.get('tracks_scored', len(per_track)))} track(s) of split "
             f"<b>{esc(summary.get('split', 'n/a'))}</b> under <code>{esc(summary.get('root', 'n/a'))}</code>; "
             f"model <code>{esc(summary.get('model_version', 'n/a'))}</code> "
             f"from <code>{esc(summary.get('model_dir', 'n/a'))}</code></p>")
    if summary.get("legend"):
        facts += f'\n<p class="note">{esc(summary["legend"])}</p>'
    medians = "".join(metric_chart(scores, methods, targets, f"{metric}, median over tracks", metric, 370)
                      for metric in TABLE_METRICS)
    parts = [facts, "<h2>Median over tracks</h2>", scores_table(scores, methods, targets),
             f'<div class="charts">{medians}</div>']
    if skipped:
        parts += ["<h2>Skipped</h2><ul>", *(f"<li>{esc(name)}: {esc(reason)}</li>"
                                           for name, reason in sorted(skipped.items())), "</ul>"]
    names = sorted(per_track)
    parts.append("<h2>Per track</h2>")
    if names:  # anchors by position: ids may not hold the spaces song names have
        parts.append("<p>" + " · ".join(f'<a href="#track-{n}">{esc(name)}</a>'
                                        for n, name in enumerate(names, 1)) + "</p>")
    for position, name in enumerate(names, 1):
        track_scores = _track_scores(per_track[name])
        parts += [f'<h3 id="track-{position}">{esc(name)}</h3>', '<div class="charts">',
                  metric_chart(track_scores, methods, targets, f"SDR: {name}"),
                  f"<div>{scores_table(track_scores, methods, targets)}</div>", "</div>"]
    if not per_track:
        parts.append('<p class="note">no per-track scores</p>')
    return page(f"Evaluation: {summary.get('split', '')} split", "\n".join(parts),
                subtitle=f"model {summary.get('model_version', 'n/a')}")


def write_evaluation_report(eval_dir: str, *, read_text: ReadText = storage.read_text,
                            write_text: WriteText = storage.write_text_atomic) -> str:
    """Read EVAL/summary.json and the tracks it lists, write EVAL/index.html; returns its path."""
    text = read_optional(read_text, storage.join(eval_dir, SUMMARY_FILE))
    if text is None:
        raise FileNotFoundError(f"no {SUMMARY_FILE} in {eval_dir}: run the evaluation first")
    summary = json.loads(text)
    per_track = {}
    for name in summary.get("tracks") or []:
        track_text = read_optional(read_text, storage.join(eval_dir, TRACKS_DIR, f"{name}.json"))
        if track_text is not None:
            per_track[str(name)] = json.loads(track_text)
    index = storage.join(eval_dir, INDEX_FILE)
    write_text(index, render_evaluation(summary, per_track))
    return index
