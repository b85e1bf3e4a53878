"""Resource limits: refused from metadata before decoding, with the limit and the value in the message."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audio.limits import LimitError, Limits, check_complete
from audio.codec import DecodeError
from tests.reliability.corpus import CASES


def _case(name: str):
    return next(case for case in CASES if case.name == name)


def test_a_header_claiming_hundreds_of_hours_fails_fast(corpus, record_case):
    import time

    folder, _ = corpus
    started = time.monotonic()
    with pytest.raises(LimitError) as refused:
        Limits().check_file(folder / _case("huge declared length (flac)").file)
    seconds = time.monotonic() - started
    record_case("limits", "flac header declaring 865 h", "refused before decoding",
                f"refused in {seconds:.2f} s: {refused.value}")
    assert "declared duration 865 h 42 min is longer than the 3 h 00 min limit" in str(refused.value)
    assert seconds < 5  # one ffprobe call, no decoding


@pytest.mark.parametrize("limits, rate, channels, message", [
    (Limits(max_channels=2), 96000, 6, "6 channels is outside 1..2"),
    (Limits(max_sample_rate=48000), 96000, 6, "sample rate 96000 Hz is outside 1..48000 Hz"),
    (Limits(max_seconds=0.1), 96000, 6, "longer than the 0 min 00 s limit"),
])
def test_configurable_caps(corpus, limits, rate, channels, message, record_case):
    folder, _ = corpus
    path = folder / _case("96 kHz 6 channels").file
    assert sf.info(path).samplerate == rate and sf.info(path).channels == channels
    Limits().check_file(path)  # the defaults take it
    with pytest.raises(LimitError) as refused:
        limits.check_file(path)
    caps = {key: value for key, value in vars(limits).items() if value != getattr(Limits(), key)}
    record_case("limits", f"96 kHz 6 ch, caps {caps}", "refused", f"refused: {refused.value}")
    assert message in str(refused.value)


def test_the_defaults_take_real_music(corpus):
    folder, _ = corpus
    for name in ("8 kHz mono", "an hour of silence", "one sample", "96 kHz 6 channels"):
        Limits().check_file(folder / _case(name).file)


def test_a_stream_running_past_the_limit_is_stopped():
    blocks = (np.zeros((1000, 2), np.float32) for _ in range(100))
    taken = []
    with pytest.raises(LimitError, match="runs past"):
        for block in Limits(max_seconds=2.0).bounded(blocks, rate=1000):
            taken.append(block)
    assert len(taken) == 2  # stopped as soon as it went over, not after reading everything


def test_a_truncated_file_is_named_as_such():
    check_complete(None, 10)
    check_complete(100, 100)
    with pytest.raises(DecodeError, match="truncated: the header declares 100 samples, only 40 decode"):
        check_complete(100, 40)
