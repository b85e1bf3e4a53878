"""One frozen config tree for audio, STFT, network and training, saved as JSON beside every model."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

MIXTURE = "mixture"
STEM_NAMES = ("drums", "bass", "other", "vocals")  # musdb's stem order after the mixture
RESIDUAL = "residual"
CONFIG_FILE = "config.json"
DATASET_FILE = "dataset.json"  # preprocess's manifest of the shards, which the trainer reads


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """The model's internal audio: the rate it is trained at; outputs follow the input's rate."""

    sample_rate: int = 11025
    channels: int = 2


@dataclasses.dataclass(frozen=True)
class StftConfig:
    """STFT at the model's rate. At a processing rate k times higher, n_fft and hop scale by k,
    so the low bins line up one to one with the model's and the rest are covered by mask extension."""

    n_fft: int = 1024
    hop: int = 256
    bins: int = 512  # bins the network sees: all but the Nyquist bin

    def scaled(self, factor: int) -> "StftConfig":
        return StftConfig(n_fft=self.n_fft * factor, hop=self.hop * factor, bins=self.bins)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Spectrogram-mask U-Net (Jansson et al. 2017), one softmax over the heads plus the residual."""

    heads: tuple[str, ...] = ("vocals", "drums")
    filters: tuple[int, ...] = (16, 32, 64, 128, 256)
    kernel: int = 5
    dropout: float = 0.3
    patch_frames: int = 128  # frames per network input patch; a multiple of 2**len(filters)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How songs become TFRecord patches: waveforms at `rate_factor` times the model's rate."""

    patch_seconds: float = 6.0
    # 4: the records of a 11025 Hz model are at 44.1 kHz, MUSDB's own rate, and training sees the network
    # input the separator computes there (model/frontend.py); models trained before it existed had 1
    rate_factor: int = 4
    validation_tracks: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    batch_size: int = 8
    epochs: int = 10
    steps_per_epoch: int = 100
    learning_rate: float = 1e-3
    seed: int = 0
    # 0: cosine decay over the whole run; n > 0: the rate halves every n steps, whatever the run's
    # length, so a run stopped after k epochs is exactly the first k epochs of a longer one
    lr_half_life_steps: int = 0
    # 0: export the epoch with the best validation SDR; n > 0: the mean of the last n epochs' weights
    average_epochs: int = 0
    # 0: crops play at the songs' speed; s > 0: each patch plays at a random speed within +-s semitones
    # (pitch and tempo together, as a tape run faster or slower; trainer/data.py)
    speed_semitones: float = 0.0
    # False: an L1 loss per head only; True: the residual too (the mix magnitude times the residual's
    # share of the softmax, against the magnitude of the sum of the other stems; trainer/network.py)
    residual_loss: bool = False
    # the share of training examples whose stems come from different songs (remixed); the rest keep one
    # song's stems together, a real mixture up to the random gains (trainer/data.py)
    remix_probability: float = 1.0
    # False: each head's target is its stem's magnitude |S|; True: the part of it in phase with the
    # mixture, |S| cos(phase S - phase X), which a real mask on |X| resynthesised with the mixture's phase
    # (as the separator does) must approach to minimise the waveform error (Erdogan et al. 2015)
    phase_sensitive_target: bool = False
    # the loss per head: "l1" (mean absolute error, Spleeter's) or "l2" (mean squared error: with
    # phase_sensitive_target it is the squared error of the resynthesised stem, as SDR weighs it)
    loss: str = "l1"


@dataclasses.dataclass(frozen=True)
class SeparatorConfig:
    """Chunked inference: time-domain segments of whole network patches, cross-faded."""

    overlap: float = 0.25
    batch_size: int = 4
    wiener_iterations: int = 0  # 0: ratio masks; n > 0: n EM steps of a multichannel Wiener filter


@dataclasses.dataclass(frozen=True)
class Config:
    audio: AudioConfig = AudioConfig()
    stft: StftConfig = StftConfig()
    network: NetworkConfig = NetworkConfig()
    data: DataConfig = DataConfig()
    training: TrainingConfig = TrainingConfig()
    separator: SeparatorConfig = SeparatorConfig()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Config":
        return _build(cls, raw)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        return cls.from_dict(json.loads(text))

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_FILE
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "Config":
        return cls.from_json((Path(directory) / CONFIG_FILE).read_text())

    def replace(self, **sections: Any) -> "Config":
        """Return a copy with whole sections or `section__field=value` overrides applied."""
        raw = dataclasses.asdict(self)
        for key, value in sections.items():
            section, _, field = key.partition("__")
            if field:
                raw[section][field] = value
            else:
                raw[section] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        return Config.from_dict(raw)


def _build(cls: type, raw: dict[str, Any]) -> Any:
    """Build a (nested) frozen dataclass from plain JSON values, refusing unknown keys."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    values = {}
    for name, value in raw.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            values[name] = _build(type(default), value)
        elif isinstance(default, tuple):
            values[name] = tuple(value)
        else:
            values[name] = type(default)(value) if default is not None else value
    return cls(**values)
