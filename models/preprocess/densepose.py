"""DensePose IUV import door (the released pose2body models' first 3 input channels).

No DensePose network runs here (Detectron's DensePose is not installable on these machines) and mediapipe
Pose gives 33 landmarks and a person mask, not body-surface coordinates: **IUV cannot be computed here**,
only imported. DensePose writes one IUV PNG per frame with the part index I (0 background, 1..24 body
parts) in the file's blue channel, U and V (0..255) in green and red. The official loader opens it as RGB,
so its channels are (V, U, I); it normalises all three to [-1, 1] and then re-scales I so that 24 → 1
(``x' = ((x/2 + 1/2)·255/24 - 1/2)·2``; facts from NVIDIA/vid2vid ``data/pose_dataset.py``). The stage
stores the picture as read (V, U, I); the input encoding ``densepose_iuv`` applies that normalisation.
Resizing is by nearest neighbour (PIL's, as the official loader), never blending part indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from models.preprocess.base import Frame, Output, PerFrameFileImport, PreprocessInputError, check_frames

N_PARTS = 24  # DensePose body parts (I = 1..24)


def read_iuv(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """H×W×3 uint8 (V, U, I) from one DensePose IUV PNG, at the clip's frame size."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            size = rgb.size
    except (OSError, ValueError) as exc:
        raise PreprocessInputError(f"{path}: unreadable IUV image ({exc})") from None
    h, w = shape
    if size != (w, h):
        if size[0] * h != size[1] * w:
            raise PreprocessInputError(f"{path} is {size[0]}x{size[1]}, the clip's frames {w}x{h}: another aspect "
                                       f"ratio (make IUV of the frames as ingested)")
        rgb = rgb.resize((w, h), Image.NEAREST)
    iuv = np.asarray(rgb, np.uint8).copy()
    if int(iuv[..., 2].max()) > N_PARTS:
        raise PreprocessInputError(f"{path}: blue channel reaches {int(iuv[..., 2].max())}, not a DensePose IUV image "
                                   f"(part index I in 0..{N_PARTS} in blue, U in green, V in red)")
    return iuv


class DensePoseIUVImport(PerFrameFileImport):
    """densepose importer: ``<import_dir>/<clip>/*.png``, one IUV image per frame in name order."""

    pattern, kind, listing = "*.png", "IUV", "DensePose IUV *.png"
    name = "iuv"

    def __call__(self, frames: Sequence[Frame]) -> list[Output]:
        h, w = check_frames(frames)
        outputs = []
        for _ in frames:
            iuv = read_iuv(self.next_file(), (h, w))
            outputs.append({"payload": iuv, "empty": not bool(iuv[..., 2].any())})
        return outputs
