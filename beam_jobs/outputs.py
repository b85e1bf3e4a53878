"""Where a track's outputs go: the file-name template, the output formats, and the safety checks.

A template such as `{track}/{stem}.{ext}` (the default) names every output of a track relative to the
output prefix: one audio file per stem, the plot (stem `plot`, ext `png`) and the track's record (stem
`track`, ext `json`, written last: its presence means the track is done). A rendered name must stay
under the prefix (no absolute paths, no `..`, no empty parts) and no two outputs may share a name.
"""
from __future__ import annotations

import dataclasses
import string

from audio.codec_blocks import FORMATS, LIBSNDFILE_FORMATS

DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
FIELDS = ("track", "stem", "ext")
PLOT, RECORD = "plot", "track"  # pseudo-stems: the plot and the per-track record
AUTO = "auto"  # FLOAT wav stems for a float input (it may hold more than full scale), else PCM_16 / PCM_24
SUBTYPES = {"wav": (AUTO, "PCM_16", "PCM_24", "FLOAT"), "flac": (AUTO, "PCM_16", "PCM_24")}
FLOAT_INPUTS = {"FLOAT", "DOUBLE"}  # libsndfile subtypes whose samples can exceed full scale


class UnsafePath(ValueError):
    """A rendered output name that would leave the output prefix or clash with another output."""


@dataclasses.dataclass(frozen=True)
class OutputSettings:
    """How and where stems are written; `output` is the prefix (local folder or gs://)."""

    output: str
    template: str = DEFAULT_TEMPLATE
    format: str = "wav"
    subtype: str = AUTO  # wav and flac
    bitrate: str = "192k"  # mp3 and ogg

    def describe(self) -> dict:
        """The settings as they go into each track's record."""
        if self.format in LIBSNDFILE_FORMATS:
            return {"format": self.format, "subtype": self.subtype}
        return {"format": self.format, "bitrate": self.bitrate}


def for_input(settings: OutputSettings, input_subtype: str | None) -> OutputSettings:
    """The settings one track is written with: `auto` becomes FLOAT for a wav from a float input (so a
    master louder than full scale keeps every sample), PCM_24 for a flac from one, PCM_16 otherwise."""
    if settings.subtype != AUTO:
        return settings
    loud = input_subtype in FLOAT_INPUTS
    subtype = ("FLOAT" if settings.format == "wav" else "PCM_24") if loud else "PCM_16"
    return dataclasses.replace(settings, subtype=subtype)


def clips(settings: OutputSettings) -> bool:
    """Whether the output format holds only [-1, 1]: everything but float wav."""
    return not (settings.format == "wav" and settings.subtype == "FLOAT")


def check_settings(settings: OutputSettings) -> None:
    """Raise ValueError with a clear message for a bad template or format combination."""
    if settings.format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {settings.format!r}")
    if settings.format in SUBTYPES and settings.subtype not in SUBTYPES[settings.format]:
        raise ValueError(f"{settings.format} takes subtypes {SUBTYPES[settings.format]}, not {settings.subtype!r}")
    if not settings.bitrate.rstrip("kK").isdigit():
        raise ValueError(f"bitrate must look like 192k, not {settings.bitrate!r}")
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(
            settings.template) if name is not None]
    except ValueError as error:
        raise ValueError(f"bad --filename template {settings.template!r}: {error}") from None
    names = {name for name, _, _ in fields}
    if names - set(FIELDS) or any(spec or conversion for _, spec, conversion in fields):
        raise ValueError(f"--filename may only use the fields {{track}}, {{stem}} and {{ext}}, not "
                         f"{settings.template!r}")
    if names != set(FIELDS):
        raise ValueError(f"--filename must use each of {{track}}, {{stem}} and {{ext}} (so that no two "
                         f"outputs share a name), not {settings.template!r}")
    track_files("a track", ("vocals", "drums"), settings)


def track_files(track: str, stems: tuple[str, ...], settings: OutputSettings) -> dict[str, str]:
    """Every output of a track, {stem, `plot`, `track`: path relative to the output prefix}."""
    names = {stem: (stem, settings.format) for stem in stems}
    names.update({PLOT: (PLOT, "png"), RECORD: (RECORD, "json")})
    files = {key: safe_relative(settings.template.format(track=track, stem=stem, ext=ext))
             for key, (stem, ext) in names.items()}
    if len({path.lower() for path in files.values()}) != len(files):
        raise UnsafePath(f"--filename {settings.template!r} gives two outputs of {track!r} one name")
    return files


MAX_NAME_BYTES = 200  # file systems allow 255 bytes per name; leave room for suffixes and temp names


def safe_name(name: str) -> str:
    """A track name usable as one path part: separators and control characters become `_`, a name of
    dots or a leading dot (hidden, or `..`) gets a `_` in front, and long names are cut (at a character
    boundary). Unicode, spaces and quotes are kept: object stores and file systems take them."""
    name = "".join("_" if char in "/\\" or ord(char) < 32 or ord(char) == 127 else char for char in name)
    if not name or name.startswith("."):
        name = "_" + name
    encoded = name.encode("utf-8")[:MAX_NAME_BYTES]
    return encoded.decode("utf-8", errors="ignore")


def safe_relative(path: str) -> str:
    """The path itself if it names a file strictly under the output prefix; UnsafePath otherwise."""
    parts = path.split("/")
    bad = [part for part in parts if part in ("", ".", "..") or "\\" in part
           or any(ord(char) < 32 for char in part)]
    if bad or path.startswith("/"):
        raise UnsafePath(f"output name {path!r} would not stay under the output prefix")
    return path
