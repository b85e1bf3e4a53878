"""MODEL_CARD.md for an exported model: data, architecture, config, losses and terms of use."""
from __future__ import annotations

import json
from typing import Any

from model.config import Config
from trainer.dataset_info import split_sizes

MUSDB_TERMS = ("A model trained on MUSDB18 material (including its 7-second previews) is for research and "
               "non-commercial use only, per the MUSDB18 terms; each song's own licence also applies.")


def render_model_card(config: Config, data: dict[str, Any], best: dict[str, float] | None,
                      epochs_run: int, averaged: list[int] = ()) -> str:
    """`data` holds "description", "location" and the dataset.json `info`; `best` is the row of the epoch with
    the best validation SDR, exported unless `averaged` lists the epochs whose mean weights were."""
    lines = [
        "# Audio-Track Separator model", "",
        f"Separates a song into {', '.join(config.network.heads)} and the residual (everything else).", "",
        "## Training data", "",
        f"- {data.get('description') or 'not described (pass --data_description)'}",
        f"- records: `{data.get('location', '?')}`",
        *_split_lines(data.get("info", {})), "",
        "## Architecture", "",
        _architecture(config), "",
        "## Training", "",
        *_training_lines(config, best, epochs_run, averaged), "",
        "## Terms of use", "",
        _terms(data), "",
        "## Config", "",
        "```json", config.to_json(), "```", "",
    ]
    return "\n".join(lines)


def _terms(data: dict[str, Any]) -> str:
    if "musdb" in json.dumps(data, default=str).lower():
        return f"**This model was trained on MUSDB18 material.** {MUSDB_TERMS}"
    return MUSDB_TERMS


def _split_lines(info: dict[str, Any]) -> list[str]:
    lines = [f"- {split}: " + ", ".join(f"{count} {name}" for name, count in counts.items())
             for split, counts in split_sizes(info).items() if counts]
    if split_sizes(info).get("valid"):
        lines.append("- the valid songs are never trained on: they only select the exported epoch (val_sdr) "
                     "and stop training early")
    return lines + [f"- audio: records at {info.get('sample_rate', '?')} Hz, {info.get('channels', '?')} channels"]


def _architecture(config: Config) -> str:
    net, stft = config.network, config.stft
    return (f"Spectrogram-mask U-Net (Jansson et al. 2017, as in Spleeter): {len(net.filters)} levels of "
            f"{'/'.join(map(str, net.filters))} filters, {net.kernel}x{net.kernel} kernels, dropout "
            f"{net.dropout}; input |STFT| of {net.patch_frames} frames x {stft.bins} bins x "
            f"{config.audio.channels} channels at {config.audio.sample_rate} Hz (n_fft {stft.n_fft}, hop "
            f"{stft.hop}; at k times that rate, the low bins of an STFT k times as long: model/frontend.py), "
            f"batch-normalised per frequency bin; a softmax over the heads and the residual "
            f"gives one ratio mask per head."
            f"{_filtering(config)}")


def _schedule(config: Config) -> str:
    half_life = config.training.lr_half_life_steps
    return f"halving every {half_life} steps" if half_life > 0 else "on a cosine decay"


def _filtering(config: Config) -> str:
    iterations = config.separator.wiener_iterations
    if iterations > 0:
        return (f" At separation the masks seed {iterations} EM iteration(s) of a multichannel Wiener filter "
                "(norbert).")
    return ""


def _speed_text(semitones: float) -> str:
    return f", each song at a random speed within +-{semitones:g} semitones" if semitones else ""


def _residual_loss_text(residual_loss: bool) -> str:
    return " and on the residual" if residual_loss else ""


def _target_text(phase_sensitive: bool) -> str:
    return " against the part of each stem's magnitude in phase with the mix" if phase_sensitive else ""


def _remix_text(probability: float) -> str:
    if probability <= 0:
        return "each example's stems from one song"
    share = "" if probability >= 1 else f" in {probability:.0%} of examples"
    return f"stems remixed across songs{share}"


def _training_lines(config: Config, best: dict[str, float] | None, epochs_run: int,
                    averaged: list[int]) -> list[str]:
    training = config.training
    lines = [f"- {epochs_run} of up to {training.epochs} epochs x {training.steps_per_epoch} steps, batch "
             f"{training.batch_size}; Adam, learning rate {training.learning_rate} {_schedule(config)}; "
             f"{training.loss.upper()} loss "
             f"on mask x mix magnitude per head{_residual_loss_text(training.residual_loss)}"
             f"{_target_text(training.phase_sensitive_target)}; "
             f"{_remix_text(training.remix_probability)}, random gains and channel swaps"
             + _speed_text(training.speed_semitones)]
    if best:
        losses = ", ".join(f"{key} {value:.5f}" for key, value in best.items() if key.endswith("loss"))
        sdrs = ", ".join(f"{key} {value:.2f} dB" for key, value in best.items() if key.startswith("val_sdr"))
        if averaged:
            lines.append(f"- exported the mean of the weights of epochs {averaged[0]}-{averaged[-1]}; the epoch "
                         f"with the highest val_sdr was {int(best['epoch']) + 1}: {losses}")
        else:
            lines.append(f"- exported epoch {int(best['epoch']) + 1} (highest val_sdr): {losses}")
        if sdrs:
            lines.append(f"- validation SDR of epoch {int(best['epoch']) + 1} (a proxy: full band at the records' "
                         f"rate, through the separator; see trainer/validation.py): {sdrs}")
    return lines
