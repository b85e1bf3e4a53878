"""The report of a separation run: OUT/index.html (the run at a glance) and a page per track.

The separate job writes each track's page beside its record (`files["track"]`, e.g. OUT/<track>/track.json
-> OUT/<track>/track.html) in the step that separates it, so the pages follow any --filename layout and
no step ever holds the whole catalogue. A track page has audio players for the mixture and every stem,
the plot, durations and timings. The mixture player points at the original input through a relative
link when the input sits on the same disk or bucket as the output (and is in a format browsers play);
otherwise the page says why there is none.

The index is rendered from OUT/summary.json alone (see beam_jobs/run_summary.py): counts, speed, the
slowest tracks and the first failures up to a limit, and links to the manifest and dead-letter shards
(one line per track / per failed input). Its size does not grow with the catalogue. Records are read
defensively: a missing field shows as "n/a", an unreadable manifest line is skipped, never fatal.
"""
from __future__ import annotations

import json
import posixpath

from common import storage
from reports.html import (INDEX_FILE, SUMMARY_FILE, ReadText, WriteText, badge, esc, number, page, read_optional,
                          relative_href, table)

RECORD_KEY = "track"  # files["track"]: the track's record, whose sibling the page becomes
# formats Chromium, Firefox and Safari all decode in an <audio> element
PLAYABLE = {".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".webm"}
IMAGES = {".png", ".jpg", ".jpeg", ".svg", ".webp", ".gif"}
MIX_KEYS = ("mix", "mixture")  # a copy of the input the job may add to the track's files
STAGE_ORDER = {stage: n for n, stage in enumerate(("check", "decode", "separate", "write", "plot"))}


def read_jsonl(text: str | None) -> tuple[list[dict], int]:
    """(records, number of lines that are not JSON objects)."""
    records, bad = [], 0
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    return records, bad


def _extension(path: str) -> str:
    return posixpath.splitext(path)[1].lower()


def _safe_relative(path: object) -> str | None:
    """A path strictly under the output prefix, or None: a page is never written outside it."""
    if not isinstance(path, str):
        return None
    parts = path.split("/")
    if path.startswith("/") or any(part in ("", ".", "..") or "\\" in part for part in parts):
        return None
    return path


def page_path(record: dict) -> str | None:
    """The track page's path relative to OUT: beside the record file, or <track>/track.html."""
    files = record.get("files") if isinstance(record.get("files"), dict) else {}
    record_file = _safe_relative(files.get(RECORD_KEY))
    if record_file is None:
        record_file = _safe_relative(f"{record.get('track', '')}/{RECORD_KEY}.json")
    return None if record_file is None else posixpath.splitext(record_file)[0] + ".html"


def track_files(record: dict, output_dir: str, page_dir: str) -> dict[str, str]:
    """name -> href relative to the page's folder; `files` (relative to OUT) win over `outputs`,
    so a report still works after the output folder was copied elsewhere."""
    files = record.get("files") if isinstance(record.get("files"), dict) else {}
    outputs = record.get("outputs") if isinstance(record.get("outputs"), dict) else {}
    hrefs = {}
    for name in dict.fromkeys([*files, *outputs]):
        if _safe_relative(files.get(name)):
            hrefs[str(name)] = relative_href(storage.join(output_dir, files[name]), page_dir)
        elif isinstance(outputs.get(name), str) and outputs[name]:
            hrefs[str(name)] = relative_href(outputs[name], page_dir)
    return {name: href for name, href in hrefs.items() if href}


def _player(label: str, href: str) -> str:
    return (f"<div>{esc(label)}</div><audio controls preload=\"metadata\" src=\"{esc(href)}\">"
            f'<a href="{esc(href)}">{esc(label)}</a></audio>')


def mixture_player(record: dict, files: dict[str, str], page_dir: str) -> str:
    """The mixture's player, or a line saying why there is none."""
    for key in MIX_KEYS:
        if key in files:
            return _player("mixture", files[key])
    source = record.get("input")
    if not isinstance(source, str) or not source:
        return '<div>mixture</div><div class="note">the input path is not recorded</div>'
    href = relative_href(source, page_dir)
    if href is None:
        return (f'<div>mixture</div><div class="note">not linked: the input <code>{esc(source)}</code> '
                f"is not on the same disk or bucket as this report</div>")
    if _extension(source) not in PLAYABLE:
        return (f'<div>mixture</div><div class="note">browsers do not play {esc(_extension(source) or "this")} '
                f'files: <a href="{esc(href)}">download the input</a></div>')
    return _player("mixture", href)


def _facts(record: dict) -> str:
    rows = [("status", badge(str(record.get("status", "n/a")))),
            ("input", f"<code>{esc(record.get('input', 'n/a'))}</code>"),
            ("duration", number(record.get("duration_s"), 2, " s")),
            ("sample rate", number(record.get("sample_rate"), 0, " Hz")),
            ("channels", number(record.get("channels"), 0)),
            ("samples", number(record.get("samples"), 0)),
            ("stem format", esc(" ".join(str(record[key]) for key in ("format", "subtype", "bitrate")
                                         if record.get(key)) or "n/a")),
            ("model version", f"<code>{esc(record.get('model_version', 'n/a'))}</code>")]
    return ('<table class="facts">\n' + "".join(f"<tr><th>{name}</th><td>{value}</td></tr>\n"
                                                for name, value in rows) + "</table>\n")


def _timings(record: dict) -> str:
    """One row of seconds per stage, in the order the job ran them, the total last."""
    timings = record.get("timings_s")
    if not isinstance(timings, dict) or not timings:
        return '<p class="note">no timings recorded</p>'
    stages = sorted(timings, key=lambda stage: (stage == "total", STAGE_ORDER.get(stage, len(STAGE_ORDER))))
    speed = _speed(record)
    note = "" if record.get("status") != "skipped" else (
        '<p class="note">skipped in this run: the timings are from the run that separated it</p>')
    return (table(stages, [[number(timings[stage], 2) for stage in stages]], numeric=range(len(stages)))
            + (f"<p>{speed}× real time (audio seconds per second of work)</p>" if speed != "n/a" else "")
            + note)


def _speed(record: dict) -> str:
    timings = record.get("timings_s") if isinstance(record.get("timings_s"), dict) else {}
    return _realtime(record.get("duration_s"), timings.get("total"))


def _realtime(duration: object, seconds: object) -> str:
    """Audio seconds per second of work, or n/a."""
    if number(seconds) == "n/a" or number(duration) == "n/a" or seconds <= 0:
        return "n/a"
    return number(duration / seconds, 1)


def _stem_names(record: dict, files: dict[str, str]) -> list[str]:
    stems = record.get("stems")
    if isinstance(stems, list) and stems:
        return [str(stem) for stem in stems]
    return [name for name, href in files.items() if _extension(href) in PLAYABLE and name not in MIX_KEYS]


def render_track(record: dict, output_dir: str, page_dir: str) -> str:
    """The page of one track in `page_dir`: players (mixture first), plots, facts, timings, other files."""
    track = str(record.get("track", "n/a"))
    files = track_files(record, output_dir, page_dir)
    stems = _stem_names(record, files)
    players = [mixture_player(record, files, page_dir)]
    players += [_player(stem, files[stem]) if stem in files
                else f'<div>{esc(stem)}</div><div class="note">no file recorded</div>' for stem in stems]
    shown = {*stems, *MIX_KEYS}
    plots = [f'<p><img class="plot" src="{esc(href)}" alt="{esc(name)} of {esc(track)}"></p>'
             for name, href in files.items() if name not in shown and _extension(href) in IMAGES]
    others = [f'<li><a href="{esc(href)}">{esc(name)}</a></li>' for name, href in files.items()
              if name not in shown and _extension(href) not in IMAGES]
    index = relative_href(storage.join(output_dir, INDEX_FILE), page_dir)
    warnings = record.get("warnings") if isinstance(record.get("warnings"), list) else []
    body = (f'<p><a href="{esc(index)}">&larr; all tracks</a></p>\n'
            + "".join(f'<p class="warning">{badge("warning")} {esc(text)}</p>\n' for text in warnings)
            + '<div class="columns">\n'
            f'<div><h2>Listen</h2>\n<div class="players">{"".join(players)}</div></div>\n'
            f"<div><h2>Track</h2>\n{_facts(record)}<h2>Timings</h2>\n{_timings(record)}</div>\n</div>\n"
            f'<h2>Plot</h2>\n{"".join(plots) or "<p class=note>no plot recorded</p>"}\n'
            + (f'<h2>Other files</h2>\n<ul>{"".join(others)}</ul>\n' if others else ""))
    return page(f"Separation: {track}", body)


def write_track_page(record: dict, output_dir: str, write_text: WriteText = storage.write_text_atomic) -> str | None:
    """Write the track's page beside its record; returns its path (None when the record names no safe one)."""
    target = page_path(record)
    if target is None:
        return None
    path = storage.join(output_dir, target)
    write_text(path, render_track(record, output_dir, posixpath.dirname(path)))
    return path


def _track_link(entry: dict, output_dir: str) -> str:
    link, target = esc(entry.get("track") or "(unnamed)"), _safe_relative(entry.get("page"))
    if target is not None:
        link = f'<a href="{esc(relative_href(storage.join(output_dir, target), output_dir))}">{link}</a>'
    return link


def _shard_links(names: object, output_dir: str) -> str:
    names = [name for name in names if _safe_relative(name)] if isinstance(names, list) else []
    return ", ".join(f'<a href="{esc(relative_href(storage.join(output_dir, name), output_dir))}">{esc(name)}</a>'
                     for name in names) or "none"


def render_index(summary: dict, output_dir: str) -> str:
    """The run's overview from its summary: counts and speed, the slowest tracks and the first failures
    (each list bounded by the job), and links to the manifest and dead-letter shards that list them all."""
    failed = summary.get("failed", 0)
    head = (f"<p>{badge('ok')} {number(summary.get('separated'), 0)} separated &nbsp; {badge('skipped')} "
            f"{number(summary.get('skipped'), 0)} skipped (done before) &nbsp; {badge('failed')} "
            f"{number(failed, 0)} failed &nbsp; · {number(summary.get('audio_seconds'), 1)} s of audio · model "
            f"{esc(', '.join(map(str, summary.get('model_versions') or [])) or 'n/a')}</p>\n")
    if summary.get("warned"):
        head += (f'<p>{badge("warning")} {number(summary["warned"], 0)} track(s) clipped in their output format: '
                 "their pages say how much</p>\n")
    if number(summary.get("wall_seconds")) != "n/a":
        head += (f"<p>{number(summary.get('audio_seconds'), 1)} s separated in {number(summary['wall_seconds'], 1)} "
                 f"s of wall time ({number(summary.get('realtime_factor'), 1)}× real time)</p>\n")
    head += (f"<p>Every track, one JSON line each: {_shard_links(summary.get('manifest_shards'), output_dir)}"
             f"<br>Every failed input: {_shard_links(summary.get('dead_letter_shards'), output_dir)}</p>")
    slowest = [entry for entry in summary.get("slowest") or [] if isinstance(entry, dict)]
    tracks = (table(["track", "duration (s)", "time (s)", "× real time"],
                    [[_track_link(entry, output_dir), number(entry.get("duration_s"), 1),
                      number(entry.get("seconds"), 1), _realtime(entry.get("duration_s"), entry.get("seconds"))]
                     for entry in slowest], numeric=[1, 2, 3])
              if slowest else '<p class="note">no track separated in this run</p>')
    failures = [entry for entry in summary.get("failures") or [] if isinstance(entry, dict)]
    listed = (table(["input", "track", "stage", "reason"],
                    [(f"<code>{esc(f.get('input', 'n/a'))}</code>", esc(f.get("track", "n/a")),
                      esc(f.get("stage", "n/a")), esc(f.get("reason", "n/a"))) for f in failures])
              if failures else "<p>none</p>")
    if isinstance(failed, int) and failed > len(failures):
        listed += f'<p class="note">the first {len(failures)} of {failed} by input; the rest are in the dead-letter shards</p>'
    body = (f"{head}\n<h2>Slowest tracks</h2>\n{tracks}\n<h2>Failures</h2>\n{listed}")
    return page("Separation run", body, subtitle=output_dir)


def write_separation_report(output_dir: str, *, read_text: ReadText = storage.read_text,
                            write_text: WriteText = storage.write_text_atomic) -> str:
    """Rewrite every track's page from the manifest shards, then OUT/index.html from OUT/summary.json.

    `read_text(path)` / `write_text(path, text)` reach the output folder: the local defaults, or the
    caller's object-storage functions. Returns the index's path; FileNotFoundError when the folder holds
    no finished separation run (no summary.json).
    """
    output_dir = output_dir.rstrip("/") or "/"
    text = read_optional(read_text, storage.join(output_dir, SUMMARY_FILE))
    summary = _json_object(text)
    if summary is None:
        raise FileNotFoundError(f"no {SUMMARY_FILE} of a separation run in {output_dir}")
    for name in summary.get("manifest_shards") or []:
        if _safe_relative(name):
            for record in read_jsonl(read_optional(read_text, storage.join(output_dir, name)))[0]:
                write_track_page(record, output_dir, write_text)
    index = storage.join(output_dir, INDEX_FILE)
    write_text(index, render_index(summary, output_dir))
    return index


def _json_object(text: str | None) -> dict | None:
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
