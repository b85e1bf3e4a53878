"""model.chunking: the stream's buffers stay short however the audio arrives."""
from __future__ import annotations

import numpy as np

from model.chunking import SpectralStream
from model.config import StftConfig
from model.frontend import FrontEnd


def test_a_whole_song_in_one_block_keeps_the_buffers_a_few_patches_long():
    patch, batch, hop = 32, 4, 256
    held = []

    def pass_through(magnitude: np.ndarray) -> dict[str, np.ndarray]:
        held.append((stream.spec.shape[1], stream.mask_weights.shape[0]))  # frames held when a batch arrives
        return {"vocals": np.ones_like(magnitude)}

    front = FrontEnd(factor=1, rate=11025, stft=StftConfig(n_fft=1024, hop=hop, bins=512), bins=512)
    stream = SpectralStream(("vocals",), front, patch, 0.25, batch, pass_through)
    song = np.random.default_rng(0).standard_normal((400 * patch * hop, 2)).astype(np.float32)
    out = stream.push(song)["vocals"]
    out = np.concatenate([out, stream.finish()["vocals"]])
    np.testing.assert_allclose(out, song, atol=1e-5)  # a mask of ones gives the song back
    assert len(held) > 50
    assert max(max(frames, masks) for frames, masks in held) <= 2 * batch * patch  # not the song's length
