"""model.chunking: the overlap-add's buffers stay short however the audio arrives."""
from __future__ import annotations

import numpy as np

from model.chunking import OverlapAdd


def test_a_whole_song_in_one_block_keeps_the_sums_a_few_segments_long():
    segment, batch = 1024, 4
    held = []

    def identity(chunks: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        held.append(overlap.weights.shape[0])  # what the sums hold when the next batch arrives
        return [{"vocals": chunk} for chunk in chunks]

    overlap = OverlapAdd(("vocals",), segment, 0.25, batch, identity, align=256)
    song = np.random.default_rng(0).standard_normal((200 * segment, 2)).astype(np.float32)
    out = overlap.push(song)["vocals"]
    out = np.concatenate([out, overlap.finish()["vocals"]])
    np.testing.assert_allclose(out, song, atol=1e-6)  # cross-faded back exactly
    assert len(held) > 50 and max(held) <= 2 * segment  # not the whole song's length
