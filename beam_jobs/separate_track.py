"""One track, streamed end to end: decode blocks -> separate -> encode each stem -> plot -> record.

Memory stays bounded whatever the song's length: audio flows through in blocks, stems are encoded as
they come, and the plot is drawn from bounded summaries. Every output is written under a temporary
name and renamed into place; the track's record is written last, so its presence means "done".
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any, Iterable, Iterator

import numpy as np

from audio.limits import Limits, check_complete
from beam_jobs import outputs, storage
from beam_jobs.outputs import OutputSettings
from reports.separation import write_track_page

log = logging.getLogger(__name__)


class Stages:
    """Adds up the seconds spent per stage and remembers the current one, so a failure can say where."""

    def __init__(self) -> None:
        self.current, self.started = "start", time.monotonic()
        self.seconds: dict[str, float] = {}

    def summary(self) -> dict[str, float]:
        return {**{name: round(value, 3) for name, value in self.seconds.items()},
                "total": round(time.monotonic() - self.started, 3)}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        outer, self.current, start = self.current, name, time.monotonic()
        yield  # on an error `current` keeps naming the innermost stage, where it happened
        self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - start
        self.current = outer

    def timed(self, name: str, items: Iterable[Any]) -> Iterator[Any]:
        """Iterate `items`, counting the time spent producing them as stage `name`."""
        iterator = iter(items)
        while True:
            with self.stage(name):
                item = next(iterator, StopIteration)
            if item is StopIteration:
                return
            yield item


def previous_record(separator: Any, track: str, settings: OutputSettings) -> dict | None:
    """The stored record if this model version already produced every output the settings ask for."""
    files = outputs.track_files(track, separator.stem_names, settings)
    record_path = storage.join(settings.output, files[outputs.RECORD])
    if not storage.exists(record_path):
        return None
    record = json.loads(storage.read_text(record_path))
    if record.get("model_version") != separator.version or record.get("files") != files:
        return None
    if not all(storage.exists(path) for path in record.get("outputs", {}).values()):
        return None
    return record


def separate_or_skip(separator: Any, track: str, path: str, settings: OutputSettings, stages: Stages,
                     force: bool = False, limits: Limits = Limits()) -> dict:
    """The track's record, its page written beside it: the stored record (status `skipped`) when this
    model version already made every output the settings ask for and not `force`, else a new one."""
    with stages.stage("check"):
        previous = None if force else previous_record(separator, track, settings)
    record = ({**previous, "status": "skipped", "input": path} if previous is not None
              else separate_track(separator, track, path, settings, stages, limits))
    write_track_page(record, settings.output, storage.write_text_atomic)
    return record


def separate_track(separator: Any, track: str, path: str, settings: OutputSettings,
                   stages: Stages | None = None, limits: Limits = Limits()) -> dict:
    """Separate one file into the outputs the settings name; returns the track's record.

    The file's metadata is checked against `limits` before decoding, the decoded stream is held to
    them as it flows, and a file that decodes shorter than its header declares is refused."""
    from beam_jobs.plots import Summary, render_summaries  # matplotlib: only where plots are drawn
    from audio.codec_blocks import AudioReader

    stages = stages or Stages()
    files = outputs.track_files(track, separator.stem_names, settings)
    where = {name: storage.join(settings.output, file) for name, file in files.items()}
    with contextlib.ExitStack() as staged, contextlib.ExitStack() as finish:
        with stages.stage("decode"):
            local = staged.enter_context(storage.staged_input(path))
            settings = outputs.for_input(settings, _sample_format(local))
            declared = limits.check_file(local, stream=0)
            reader = AudioReader(local, stream=0)  # stream 0 of a .stem.mp4 is the mixture
        with stages.stage("write"):
            writers = _open_writers(finish, where, separator.stem_names, reader, settings)
        summaries = {name: Summary(reader.rate) for name in ("mix", *separator.stem_names)}
        overs = Overs() if outputs.clips(settings) else None
        decoded_before = stages.seconds.get("decode", 0.0)
        blocks = stages.timed("decode", limits.bounded(reader, reader.rate))
        for mix, stems in stages.timed("separate", separator.stream(blocks, reader.rate)):
            _check_finite(stems)
            with stages.stage("write"):
                for name, waveform in stems.items():
                    writers[name].write(waveform)
                    if overs is not None:
                        overs.add(name, waveform)
            with stages.stage("plot"):
                for name, waveform in {"mix": mix, **stems}.items():
                    summaries[name].add(waveform)
        decoded_in_loop = stages.seconds.get("decode", 0.0) - decoded_before
        with stages.stage("decode"):  # before the renames: a cut-short file leaves no outputs
            check_complete(declared, reader.samples)
        with stages.stage("write"):
            finish.close()  # encoders finish, files are renamed into place
    # blocks were decoded inside the separator's loop: count that time once, under "decode"
    stages.seconds["separate"] = max(0.0, stages.seconds.get("separate", 0.0) - decoded_in_loop)
    with stages.stage("plot"):
        png = render_summaries(summaries, f"{track} ({separator.version})")
        storage.write_bytes_atomic(where[outputs.PLOT], png)
    record = {
        "track": track, "input": path, "status": "ok", "duration_s": round(reader.samples / reader.rate, 3),
        "sample_rate": reader.rate, "channels": reader.channels, "samples": reader.samples,
        "stems": list(separator.stem_names), **settings.describe(), "model_version": separator.version,
        "files": files, "outputs": where, "timings_s": stages.summary(),
    }
    if overs is not None and overs.peaks:
        record["clipped"] = overs.describe()
        record["warnings"] = [overs.warning(settings)]
        log.warning("%s: %s", track, record["warnings"][0])
    storage.write_text_atomic(where[outputs.RECORD], json.dumps(record, indent=2) + "\n")
    return record


def _open_writers(stack: contextlib.ExitStack, where: dict[str, str], stems: tuple[str, ...],
                  reader: Any, settings: OutputSettings) -> dict[str, Any]:
    """One encoder per stem, each writing a temporary file that is renamed into place on success."""
    from audio.codec_blocks import AudioWriter

    writers = {}
    for name in stems:
        local = stack.enter_context(storage.atomic_output(where[name]))
        writers[name] = stack.enter_context(AudioWriter(local, reader.rate, reader.channels, settings.format,
                                                        settings.subtype, settings.bitrate))
    return writers


class Overs:
    """Per stem: the peak and how many samples lie beyond full scale, which a PCM or lossy file clips."""

    def __init__(self) -> None:
        self.peaks: dict[str, float] = {}
        self.samples: dict[str, int] = {}

    def add(self, name: str, waveform: np.ndarray) -> None:
        magnitude = np.abs(waveform)
        over = magnitude > 1.0
        if over.any():
            self.peaks[name] = max(self.peaks.get(name, 0.0), float(magnitude.max()))
            self.samples[name] = self.samples.get(name, 0) + int(over.sum())

    def describe(self) -> dict[str, dict]:
        return {name: {"peak_dbfs": round(20 * np.log10(peak), 2), "samples": self.samples[name]}
                for name, peak in sorted(self.peaks.items())}

    def warning(self, settings: OutputSettings) -> str:
        worst = max(self.peaks, key=self.peaks.get)
        kind = settings.subtype if settings.format in ("wav", "flac") else settings.format
        return (f"{', '.join(sorted(self.peaks))} clipped in the {kind} output ({sum(self.samples.values())} "
                f"samples beyond full scale, {worst} peaks at {20 * np.log10(self.peaks[worst]):+.1f} dBFS): "
                "the stems no longer add up to the input; --format wav --subtype FLOAT keeps them whole")


def _sample_format(local: str) -> str | None:
    """libsndfile's sample format of the input (FLOAT, PCM_16, ...); None where libsndfile cannot read it."""
    import soundfile as sf

    try:
        return sf.info(local).subtype
    except Exception:  # noqa: BLE001 - not a libsndfile format: ffmpeg decodes it, as integer or lossy audio
        return None


def _check_finite(stems: dict[str, np.ndarray]) -> None:
    bad = [name for name, waveform in stems.items() if not np.all(np.isfinite(waveform))]
    if bad:
        raise ValueError(f"separation produced NaN or Inf in {', '.join(bad)}")
