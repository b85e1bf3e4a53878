"""The shared page template, escaping, relative links and the file access every report uses.

Every value that reaches a page goes through `esc` (text and attributes alike). Links are relative to
the page's own folder (`relative_href`), so a report works from local disk (file://), from a local
HTTP server and from object storage, wherever the output folder is put. File access is passed in as
two callables (`read_text`, `write_text`), so callers on object storage hand in their own (Beam jobs:
beam_jobs.storage.read_text / write_text_atomic); the defaults work on local paths.
"""
from __future__ import annotations

import html
import math
import os
import posixpath
from typing import Callable, Iterable
from urllib.parse import quote

INDEX_FILE = "index.html"  # a run folder's page (separation, evaluation)
SUMMARY_FILE = "summary.json"  # a run folder's counts or scores, which its page is drawn from
ReadText = Callable[[str], str]
WriteText = Callable[[str, str], None]

STYLE = """
:root { --ok: #1a7f37; --bad: #cf222e; --muted: #57606a; --line: #d0d7de; --head: #f6f8fa; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
       max-width: 1180px; margin: 1.5rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.sub, .note { color: var(--muted); } .note { font-size: .9rem; }
table { border-collapse: collapse; margin: .6rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: var(--head); } td.num, th.num { text-align: right; }
tr:nth-child(even) td { background: #fbfcfd; }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 1rem; font-size: .85rem;
         color: #fff; background: var(--muted); }
.badge.ok { background: var(--ok); } .badge.failed { background: var(--bad); }
.players { display: grid; grid-template-columns: max-content 1fr; gap: .4rem 1rem; align-items: center; }
.players audio { width: 100%; min-width: 320px; max-width: 560px; height: 36px; }
.columns { display: flex; flex-wrap: wrap; gap: 0 2.5rem; align-items: flex-start; }
.columns > div { flex: 1 1 340px; } .facts th { font-weight: normal; color: var(--muted); }
img.plot { max-width: 100%; border: 1px solid var(--line); }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; } svg { font: 11px system-ui, sans-serif; }
a { color: #0969da; } code { font-size: .9em; word-break: break-all; }
"""


def esc(value: object) -> str:
    """Text safe in HTML element content and in quoted attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, subtitle: str = "") -> str:
    """A whole self-contained HTML document: inline CSS, no scripts, no external resources."""
    sub = f'<p class="sub">{esc(subtitle)}</p>\n' if subtitle else ""
    # the empty icon stops browsers requesting /favicon.ico (a 404 and a console error over HTTP)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<link rel="icon" href="data:,">\n<title>{esc(title)}</title>\n<style>{STYLE}</style>\n'
            f'</head>\n<body>\n<h1>{esc(title)}</h1>\n{sub}{body}\n</body>\n</html>\n')


def table(header: Iterable[str] | None, rows: Iterable[Iterable[str]], numeric: Iterable[int] = ()) -> str:
    """An HTML table (no header row when `header` is None); header cells are escaped here, row cells
    must already be HTML (use `esc`)."""
    right = set(numeric)
    cls = lambda column: ' class="num"' if column in right else ""  # noqa: E731 - tiny local helper
    head = ("<tr>" + "".join(f"<th{cls(c)}>{esc(cell)}</th>" for c, cell in enumerate(header)) + "</tr>\n"
            if header is not None else "")
    body = "".join("<tr>" + "".join(f"<td{cls(c)}>{cell}</td>" for c, cell in enumerate(row)) + "</tr>\n"
                   for row in rows)
    return f"<table>\n{head}{body}</table>\n"


def badge(status: str) -> str:
    return f'<span class="badge {esc(status)}">{esc(status)}</span>'


def number(value: object, digits: int = 1, unit: str = "") -> str:
    """A number for a table cell, or "n/a" for missing, non-numeric and non-finite values."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def _location(path: str) -> tuple[str, str, str]:
    """(scheme, bucket or host, absolute path) of a local path or storage URL.

    Object names are taken raw, as Beam's FileSystems does: '#' and '?' are part of a name there.
    """
    scheme, separator, rest = path.partition("://")
    if separator and scheme.isalnum():
        bucket, _, name = rest.partition("/")
        return scheme, bucket, posixpath.normpath("/" + name)
    return "", "", os.path.abspath(path)


def relative_href(target: str, page_dir: str) -> str | None:
    """A URL for `target` relative to a page in `page_dir`; None when none reaches it (another bucket)."""
    scheme, root, path = _location(target)
    page_scheme, page_root, folder = _location(page_dir)
    if (scheme, root) != (page_scheme, page_root):
        return None
    # quote every character with a URL meaning (# ? % : space) so any file name stays one path
    return quote(posixpath.relpath(path, folder), safe="/")


def read_optional(read_text: ReadText, path: str) -> str | None:
    """The file's text, or None when it cannot be read (absent, or a run that stopped early)."""
    try:
        return read_text(path)
    except Exception:  # noqa: BLE001 - any storage error means "not there" to a report
        return None
