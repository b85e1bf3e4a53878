"""`atsep generate`: synthetic songs laid out like MUSDB18, for tests, demos and smoke training runs.

Every song is drawn from its own generator seeded by (seed, song index), so the same seed always
writes the same audio. Each song has a random key, mode, tempo, chord progression and stereo
placement, and four stems made with numpy/scipy alone:
  drums   kick (pitch-swept sine), snare (noise + tone), hi-hats (high-passed noise) in patterns
  bass    low harmonic notes on the chord roots, low-passed
  other   chord pads and plucked arpeggios
  vocals  a sung melody: harmonic source with glide and vibrato, vowel formants (resonant filters),
          syllable envelopes, consonant noise and pauses between phrases
The mixture is exactly the sum of the stems: stems are scaled by one common factor, then rounded to
16-bit steps, so it holds in 16-bit WAV too. Layouts: "stems" (`<split>/<Track>.stem.mp4`, five AAC
streams in musdb's order) or "hq" (`<split>/<Track>/<stem>.wav`).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from scipy import signal

from audio import codec
from model.config import MIXTURE, STEM_NAMES

LAYOUTS = ("stems", "hq")
MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 4), (0, 6, 5, 4), (0, 3, 0, 4))
VOWELS = ((730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410), (300, 870, 2240))
FORMANT_BANDWIDTHS = (80.0, 100.0, 140.0)
PEAK = 0.88  # the mixture's peak, below 0.9 with room for 16-bit rounding
PCM_SCALE = 32768


class Song:
    """A song's random plan: tempo, key, mode and chords, and the per-sample time grid."""

    def __init__(self, rng: np.random.Generator, samples: int, rate: int):
        self.rng, self.samples, self.rate = rng, samples, rate
        self.bpm = float(rng.uniform(80, 140))
        self.step = rate * 60.0 / self.bpm / 4  # samples per 16th note
        self.tonic = int(rng.integers(40, 52))  # midi, E2..D#3
        self.scale = MINOR if rng.random() < 0.5 else MAJOR
        progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
        bars = int(np.ceil(samples / (16 * self.step))) + 1
        self.chords = [progression[bar % len(progression)] for bar in range(bars)]

    def pitch(self, degree: int | np.ndarray, octave: int = 0) -> np.ndarray:
        """Midi pitch of a scale degree (any integer; wraps into higher/lower octaves)."""
        degree = np.asarray(degree)
        return self.tonic + 12 * (octave + degree // 7) + self.scale[degree % 7]

    def chord(self, bar: int, octave: int = 0) -> np.ndarray:
        root = self.chords[bar]
        return self.pitch(np.array([root, root + 2, root + 4]), octave)

    def onsets(self, steps: np.ndarray) -> np.ndarray:
        """Sample positions of (fractional) 16th-note steps from the song's start."""
        return np.round(np.asarray(steps, dtype=float) * self.step).astype(int)


def hz(midi: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69) / 12)


def pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan of a mono signal to [samples, 2]; position in [-1, 1]."""
    angle = (position + 1) * np.pi / 4
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)], axis=1)


def note_track(onsets: np.ndarray, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """For every sample, the index of the latest note started (-1 before any) and samples since it."""
    index = np.searchsorted(onsets, np.arange(samples), side="right") - 1
    since = np.arange(samples) - onsets[np.maximum(index, 0)]
    return index, since


def envelope(index: np.ndarray, since: np.ndarray, lengths: np.ndarray, rate: int, attack: float,
             decay: float, release: float) -> np.ndarray:
    """Attack ramp, exponential decay and a release ramp at each note's end; zero between notes."""
    seconds = since / rate
    length = lengths[np.maximum(index, 0)] / rate
    shape = np.minimum(1.0, seconds / attack) * np.exp(-seconds / decay)
    shape *= np.clip((length - seconds) / release, 0.0, 1.0)
    return np.where(index >= 0, shape, 0.0)


def harmonics(frequency: np.ndarray, rate: int, weights: list) -> np.ndarray:
    """Sum over k of weights[k-1] * sin(k * phase) for a per-sample fundamental `frequency` in Hz;
    a weight is a number or one value per sample. Partials that would pass 0.45 * rate at the
    highest fundamental are left out, so nothing aliases.

    sin(k x) comes from the Chebyshev recurrence sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x):
    two multiply-adds per partial instead of a sine, which keeps a song well under a second."""
    phase = phase_of(frequency, rate)
    weights = weights[: int(0.45 * rate / frequency.max())]
    two_cos = (2 * np.cos(phase)).astype(np.float32)
    previous, current = np.zeros_like(two_cos), np.sin(phase).astype(np.float32)
    tone, scratch = np.zeros_like(two_cos), np.empty_like(two_cos)
    for weight in weights:
        tone += np.multiply(current, weight, out=scratch)
        np.multiply(two_cos, current, out=scratch)
        scratch -= previous
        previous, current, scratch = current, scratch, previous
    return tone.astype(np.float64)


def phase_of(frequency: np.ndarray, rate: int) -> np.ndarray:
    return 2 * np.pi * np.cumsum(frequency) / rate


# --- drums -----------------------------------------------------------------------------------------

KICKS = ((0, 8), (0, 6, 8), (0, 7, 10), (0, 8, 11), (0, 3, 8, 10))


def drum_hits(song: Song) -> dict[str, np.ndarray]:
    """One-shot samples of the song's kit: kick, snare, closed and open hi-hat."""
    rate, rng = song.rate, song.rng
    t = np.arange(int(0.4 * rate)) / rate
    sweep = 45 + rng.uniform(80, 140) * np.exp(-t / 0.03)
    kick = np.sin(phase_of(sweep, rate)) * np.exp(-t / rng.uniform(0.1, 0.2))
    band = signal.butter(2, [900, min(9000, 0.4 * rate)], "bandpass", fs=rate, output="sos")
    snare_noise = signal.sosfilt(band, rng.standard_normal(len(t)))
    snare = (0.8 * snare_noise * np.exp(-t / 0.07)
             + 0.6 * np.sin(2 * np.pi * rng.uniform(170, 220) * t) * np.exp(-t / 0.05))
    hiss = signal.sosfilt(signal.butter(4, min(7000, 0.4 * rate), "highpass", fs=rate, output="sos"),
                          rng.standard_normal(len(t)))
    kit = {"kick": kick, "snare": snare, "hat": 0.5 * hiss * np.exp(-t / 0.018),
           "open_hat": 0.4 * hiss * np.exp(-t / 0.12)}
    tail = np.clip((t[-1] - t) / 0.1, 0.0, 1.0)  # no click where a one-shot is cut off
    return {name: hit * tail for name, hit in kit.items()}


def drum_pattern(song: Song) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Steps (16ths from the start) and velocities of every hit, bar by bar."""
    rng = song.rng
    kicks = np.array(KICKS[rng.integers(len(KICKS))])
    hat_every = int(rng.choice([1, 2, 2]))
    hits: dict[str, list] = {"kick": [], "snare": [], "hat": [], "open_hat": []}
    for bar in range(len(song.chords)):
        base = 16 * bar
        hits["kick"] += [(base + s, rng.uniform(0.8, 1.0)) for s in kicks]
        hits["snare"] += [(base + s, rng.uniform(0.8, 1.0)) for s in (4, 12)]
        if rng.random() < 0.3:  # a fill or ghost notes
            hits["snare"] += [(base + s, rng.uniform(0.3, 0.6)) for s in (14, 15)]
        for s in range(0, 16, hat_every):
            name = "open_hat" if s == 14 and rng.random() < 0.3 else "hat"
            hits[name].append((base + s, (1.0 if s % 4 == 0 else 0.6) * rng.uniform(0.7, 1.0)))
    return {name: (np.array([s for s, _ in found], dtype=float), np.array([v for _, v in found]))
            for name, found in hits.items() if found}


def drums(song: Song) -> np.ndarray:
    """Drum stem [samples, 2]: each piece an impulse train convolved with its one-shot, panned."""
    rng = song.rng
    kit = drum_hits(song)
    pans = {"kick": 0.0, "snare": rng.uniform(-0.15, 0.15), "hat": rng.uniform(-0.5, 0.5)}
    pans["open_hat"] = pans["hat"]
    out = np.zeros((song.samples, 2))
    for name, (steps, velocity) in drum_pattern(song).items():
        jitter = rng.normal(0, 0.004 * song.rate / song.step, len(steps))  # a few ms of human timing
        positions = song.onsets(np.maximum(steps + jitter, 0))
        inside = positions < song.samples
        train = np.zeros(song.samples)
        np.add.at(train, positions[inside], velocity[inside])
        out += pan(signal.oaconvolve(train, kit[name])[: song.samples], pans[name])
    return out


# --- bass and other --------------------------------------------------------------------------------

BASS_RHYTHMS = ((0, 4, 8, 12), (0, 2, 4, 6, 8, 10, 12, 14), (0, 3, 6, 8, 11, 14), (0, 6, 8, 10))


def legato_lengths(onsets: np.ndarray, last: float, fill: float) -> np.ndarray:
    """Each note lasts `fill` of the time to the next onset (the last one `last` samples)."""
    return np.diff(np.append(onsets, onsets[-1] + last)) * fill


def bass(song: Song) -> np.ndarray:
    """Bass stem: harmonic notes on the chord roots (now and then the fifth or octave), low-passed."""
    rng, rate = song.rng, song.rate
    rhythm = BASS_RHYTHMS[rng.integers(len(BASS_RHYTHMS))]
    steps, pitches = [], []
    for bar, degree in enumerate(song.chords):
        root = int(song.pitch(degree, octave=-1))
        root -= 12 if root > 45 else 0
        steps += [16 * bar + s for s in rhythm]
        pitches += [root + int(rng.choice([0, 0, 0, 7, 12])) for _ in rhythm]
    onsets = song.onsets(steps)
    lengths = legato_lengths(onsets, 4 * song.step, rng.uniform(0.6, 0.95))
    index, since = note_track(onsets, song.samples)
    tone = harmonics(hz(np.array(pitches))[np.maximum(index, 0)], rate, 1.0 / np.arange(1, 7) ** 1.2)
    tone *= envelope(index, since, lengths, rate, 0.005, rng.uniform(0.3, 0.8), 0.02)
    lowpass = signal.butter(4, rng.uniform(220, 320), "lowpass", fs=rate, output="sos")
    return pan(signal.sosfilt(lowpass, tone), rng.uniform(-0.1, 0.1))


def pads(song: Song) -> np.ndarray:
    """Sustained chords, one detuned harmonic voice per chord tone, spread across the stereo field."""
    rng, rate = song.rng, song.rate
    onsets = song.onsets(16 * np.arange(len(song.chords)))
    lengths = legato_lengths(onsets, 16 * song.step, 0.98)
    index, since = note_track(onsets, song.samples)
    shape = envelope(index, since, lengths, rate, 0.08, 4.0, 0.05)
    chords = np.array([song.chord(bar, octave=1) for bar in range(len(song.chords))])
    out = np.zeros((song.samples, 2))
    for voice, position in zip(chords.T, (-0.5, 0.0, 0.5)):
        frequency = hz(voice)[np.maximum(index, 0)]
        tone = sum(harmonics(frequency * detune, rate, 1.0 / np.arange(1, 9)) for detune in (1.0, 1.004))
        out += pan(tone * shape, position * rng.uniform(0.5, 1.0))
    return signal.sosfilt(signal.butter(2, 2500, "lowpass", fs=rate, output="sos"), out, axis=0)


def plucks(song: Song) -> np.ndarray:
    """An arpeggio of plucked 8th notes on the chord tones; upper harmonics die away first."""
    rng, rate = song.rng, song.rate
    order = np.array([[0, 1, 2, 1], [0, 2, 1, 2], [2, 1, 0, 1]][rng.integers(3)])
    steps = np.arange(0, 16 * len(song.chords), 2)
    pitches = [song.chord(step // 16, octave=2)[order[i % 4]] for i, step in enumerate(steps)]
    onsets = song.onsets(steps)
    lengths = legato_lengths(onsets, 2 * song.step, 1.0)
    index, since = note_track(onsets, song.samples)
    fade = np.exp(-since / rate * 6).astype(np.float32)  # partial k fades as fade ** k
    weights = [fade / 1]
    for k in range(2, 9):
        weights.append(weights[-1] * fade * ((k - 1) / k))
    tone = harmonics(hz(np.array(pitches))[np.maximum(index, 0)], rate, weights)
    tone *= envelope(index, since, lengths, rate, 0.002, rng.uniform(0.15, 0.4), 0.01)
    return pan(tone, rng.uniform(-0.6, 0.6))


def other(song: Song) -> np.ndarray:
    """The harmonic accompaniment: pads, plucks or both."""
    parts = ((pads,), (plucks,), (pads, plucks))[song.rng.integers(3)]
    return sum(normalised(part(song)) * song.rng.uniform(0.6, 1.0) for part in parts)


def normalised(waveform: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(waveform ** 2))
    return waveform / rms if rms > 0 else waveform


# --- vocals ----------------------------------------------------------------------------------------

def melody(song: Song) -> np.ndarray:
    """Sung notes as rows (start step, steps, scale degree, vowel): phrases of 3-8 syllables with
    breaths between them, moving mostly by step."""
    rng = song.rng
    step, degree, notes = float(rng.choice([0, 4, 8, 16])), int(rng.integers(0, 5)), []
    while not notes or step * song.step < song.samples:  # at least one phrase, even in a short song
        for _ in range(rng.integers(3, 9)):
            duration = float(rng.choice([2, 2, 3, 4, 4, 6]))
            degree = int(np.clip(degree + rng.choice([-2, -1, -1, 0, 1, 1, 2]), -2, 9))
            notes.append((step, duration, degree, rng.integers(len(VOWELS))))
            step += duration
        step += float(rng.choice([2, 4, 6, 8]))
    return np.array(notes)


def resonator(frequency: float, bandwidth: float, rate: int) -> np.ndarray:
    """A two-pole resonance (one formant) as a second-order section with unity gain at DC."""
    radius = np.exp(-np.pi * bandwidth / rate)
    a = [1.0, -2 * radius * np.cos(2 * np.pi * frequency / rate), radius ** 2]
    return np.array([sum(a), 0.0, 0.0, *a])


def sung_pitch(song: Song, notes: np.ndarray, index: np.ndarray, since: np.ndarray) -> np.ndarray:
    """Per-sample f0 in Hz: note pitches with glides between them, vibrato that grows into each
    note, and a little slow random drift."""
    rng, rate = song.rng, song.rate
    target = song.pitch(notes[:, 2].astype(int), octave=1)[np.maximum(index, 0)].astype(float)
    glide = np.exp(-1.0 / (rng.uniform(0.02, 0.05) * rate))
    midi = signal.lfilter([1 - glide], [1, -glide], target, zi=[glide * target[0]])[0]
    depth = rng.uniform(0.2, 0.5) * np.clip((since / rate - 0.15) / 0.2, 0.0, 1.0)
    midi += depth * np.sin(2 * np.pi * rng.uniform(5.0, 6.5) * np.arange(song.samples) / rate)
    drift = signal.sosfilt(signal.butter(1, 3, fs=rate, output="sos"), rng.standard_normal(song.samples))
    return hz(midi + 0.1 * drift / (np.std(drift) + 1e-12))


def vocals(song: Song, partials: int = 30) -> np.ndarray:
    """Vocal stem: a harmonic source (-6 dB/octave) through vowel formants, syllable envelopes with
    consonant noise at some onsets, silence between phrases."""
    rng, rate = song.rng, song.rate
    notes = melody(song)
    onsets = song.onsets(notes[:, 0])
    lengths = notes[:, 1] * song.step * rng.uniform(0.8, 0.95)
    index, since = note_track(onsets, song.samples)
    f0 = sung_pitch(song, notes, index, since)
    source = harmonics(f0, rate, [1.0 / k for k in range(1, partials + 1)])
    vowel = notes[:, 3].astype(int)[np.maximum(index, 0)]
    smooth = np.exp(-1.0 / (0.025 * rate))
    voice = np.zeros(song.samples)
    for number, formants in enumerate(VOWELS):
        sos = np.stack([resonator(f, b, rate) for f, b in zip(formants, FORMANT_BANDWIDTHS)])
        weight = signal.lfilter([1 - smooth], [1, -smooth], (vowel == number).astype(float))
        voice += weight * normalised(signal.sosfilt(sos, source))
    consonant = rng.random(len(onsets)) < 0.5
    burst = consonant[np.maximum(index, 0)] * np.exp(-since / (0.015 * rate)) * (since < 0.06 * rate)
    hiss = signal.sosfilt(signal.butter(4, min(3500, 0.4 * rate), "highpass", fs=rate, output="sos"),
                          rng.standard_normal(song.samples))
    voice = voice * envelope(index, since, lengths, rate, 0.04, 2.0, 0.06) + 0.3 * burst * hiss
    return pan(np.where(index >= 0, voice, 0.0), rng.uniform(-0.1, 0.1))


# --- songs and files -------------------------------------------------------------------------------

STEM_MAKERS = {"drums": drums, "bass": bass, "other": other, "vocals": vocals}
STEM_LEVELS_DB = {"drums": -1.0, "bass": -3.0, "other": -5.0, "vocals": 0.0}


def song_stems(seed: int, index: int, samples: int, rate: int) -> dict[str, np.ndarray]:
    """Int16 stems [samples, 2] of one song and their exact sum, the mixture (musdb's order)."""
    song = Song(np.random.default_rng([seed, index]), samples, rate)
    stems = {}
    for name in STEM_NAMES:
        level = STEM_LEVELS_DB[name] + song.rng.uniform(-3, 3)
        stems[name] = normalised(STEM_MAKERS[name](song)) * 10 ** (level / 20)
    gain = PEAK / max(np.abs(sum(stems.values())).max(), 1e-12)
    quantised = {name: np.round(stem * gain * PCM_SCALE).astype(np.int16) for name, stem in stems.items()}
    mixture = sum(stem.astype(np.int32) for stem in quantised.values())
    return {MIXTURE: mixture.astype(np.int16), **quantised}


def track_name(seed: int, index: int) -> str:
    return f"Synth {index:03d} - Seed {seed}"


def default_test_count(count: int) -> int:
    """About one song in five goes to test, at least one once there are two songs."""
    return 0 if count < 2 else max(1, round(count / 5))


def write_song(directory: Path, name: str, stems: dict[str, np.ndarray], rate: int, layout: str) -> Path:
    if layout == "hq":
        track = directory / name
        track.mkdir(parents=True, exist_ok=True)
        for stem, waveform in stems.items():
            codec.encode(track / f"{stem}.wav", waveform, rate, subtype="PCM_16")
        return track
    path = directory / f"{name}.stem.mp4"
    directory.mkdir(parents=True, exist_ok=True)
    codec.mux_stem_mp4(path, [waveform.astype(np.float32) / PCM_SCALE for waveform in stems.values()], rate)
    return path


def generate(root: str | Path, count: int, seed: int = 0, seconds: float = 8.0, layout: str = "stems",
             sample_rate: int = 44100, test_count: int | None = None) -> list[Path]:
    """Write `count` songs under root/train and root/test; the last `test_count` go to test.

    Returns the written `.stem.mp4` files ("stems") or track folders ("hq"), in song order."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    test_count = default_test_count(count) if test_count is None else test_count
    if not 0 <= test_count <= count:
        raise ValueError(f"test_count must be between 0 and {count}, not {test_count}")
    samples = int(round(seconds * sample_rate))
    written = []
    for index in range(count):
        split = "test" if index >= count - test_count else "train"
        stems = song_stems(seed, index, samples, sample_rate)
        written.append(write_song(Path(root) / split, track_name(seed, index), stems, sample_rate, layout))
    return written


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="atsep generate", description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="data/musdb-synth", help="folder to write train/ and test/ in")
    parser.add_argument("--count", type=int, default=8, help="number of songs")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each song")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same songs")
    parser.add_argument("--layout", choices=LAYOUTS, default="stems",
                        help="stems: <Track>.stem.mp4 (MUSDB18); hq: <Track>/<stem>.wav (MUSDB18-HQ)")
    parser.add_argument("--test-count", type=int, default=None,
                        help="songs for the test split (default: about one in five)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.seconds <= 0:
        parser.error("--count must be at least 1 and --seconds positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.layout == "stems" and not shutil.which("ffmpeg"):
        raise SystemExit("atsep generate: the stems layout needs ffmpeg (or use --layout hq)")
    paths = generate(args.output, args.count, args.seed, args.seconds, args.layout,
                     test_count=args.test_count)
    tests = sum(path.parent.name == "test" for path in paths)
    print(f"wrote {len(paths)} songs ({len(paths) - tests} train, {tests} test, {args.layout} layout) "
          f"to {Path(args.output).resolve()}")
    return 0
