"""Frame payload codecs: how one frame of one stage becomes bytes in a shard, and back.

Lossless where the value matters exactly (labels, instances, masks); float16 for flow (2×H×W, the shard's
column compression does the rest); PNG or JPEG for RGB by config; ``png_planes`` for pictures of any
number of uint8 channels (the official face encoding's 15). Encoders are deterministic so a rebuild gives
byte-identical shards. A codec says whether its values are codes (``labels``: resized by nearest neighbour,
never blended) and whether its arrays put channels first (flow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from storage.errors import ShardError

PNG_LEVEL = 3  # zlib level: measurably smaller than OpenCV's default (1) at a small encode cost


def _check(frame: np.ndarray, dtype: type, ndim: int, what: str) -> None:
    if frame.dtype != dtype or frame.ndim != ndim:
        raise ShardError(f"{what} frame must be {np.dtype(dtype).name} with {ndim} dims, got {frame.dtype} {frame.shape}")


def _imencode(ext: str, image: np.ndarray, params: list[int]) -> bytes:
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise ShardError(f"could not encode a {image.shape} {image.dtype} frame as {ext}")
    return buf.tobytes()


def _imdecode(data: bytes, flags: int, what: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise ShardError(f"corrupt {what} payload ({len(data)} bytes)")
    return image


def encode_rgb_png(frame: np.ndarray) -> bytes:
    _check(frame, np.uint8, 3, "rgb")
    return _imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])


def decode_rgb(data: bytes) -> np.ndarray:
    return cv2.cvtColor(_imdecode(data, cv2.IMREAD_COLOR, "rgb"), cv2.COLOR_BGR2RGB)


def make_jpeg_encoder(quality: int) -> Callable[[np.ndarray], bytes]:
    def encode(frame: np.ndarray) -> bytes:
        _check(frame, np.uint8, 3, "rgb")
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        return _imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])

    return encode


def _png_codec(dtype: type, what: str) -> tuple[Callable[[np.ndarray], bytes], Callable[[bytes], np.ndarray]]:
    """Lossless single-channel PNG of ``dtype`` (uint8 labels/masks, uint16 instance ids)."""
    name = np.dtype(dtype).name

    def encode(frame: np.ndarray) -> bytes:
        _check(frame, dtype, 2, what)
        return _imencode(".png", frame, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])

    def decode(data: bytes) -> np.ndarray:
        image = _imdecode(data, cv2.IMREAD_UNCHANGED, what)
        if image.dtype != dtype or image.ndim != 2:
            raise ShardError(f"{what} payload decodes to {image.dtype} {image.shape}, expected {name} H×W")
        return image

    return encode, decode


encode_gray_png, decode_gray = _png_codec(np.uint8, "label/mask")
encode_instance_png, decode_instance = _png_codec(np.uint16, "instance")

_PLANES_MAGIC = b"PL1"


def encode_planes(frame: np.ndarray) -> bytes:
    """H×W×C uint8 (any C ≥ 1) as one lossless grayscale PNG of the planes stacked vertically ((C·H)×W),
    behind a header holding C: smooth maps (distance transforms) compress well plane by plane."""
    _check(frame, np.uint8, 3, "planes")
    channels = frame.shape[2]
    if not 1 <= channels <= 65535:
        raise ShardError(f"planes frame must have 1..65535 channels, got {channels}")
    stacked = np.ascontiguousarray(np.moveaxis(frame, 2, 0)).reshape(channels * frame.shape[0], frame.shape[1])
    return _PLANES_MAGIC + np.array([channels], "<u2").tobytes() + \
        _imencode(".png", stacked, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])


def decode_planes(data: bytes) -> np.ndarray:
    if data[:3] != _PLANES_MAGIC or len(data) < 5:
        raise ShardError("corrupt planes payload: missing header")
    channels = int(np.frombuffer(data[3:5], "<u2")[0])
    stacked = _imdecode(data[5:], cv2.IMREAD_UNCHANGED, "planes")
    if stacked.dtype != np.uint8 or stacked.ndim != 2 or channels == 0 or stacked.shape[0] % channels:
        raise ShardError(f"corrupt planes payload: {stacked.dtype} {stacked.shape} for {channels} planes")
    return np.ascontiguousarray(np.moveaxis(stacked.reshape(channels, -1, stacked.shape[1]), 0, 2))


_FLOW_MAGIC = b"F16"


def encode_flow(flow: np.ndarray) -> bytes:
    """2×H×W float flow (dx, dy in pixels) as float16 with a tiny shape header."""
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ShardError(f"flow frame must be 2×H×W, got {flow.shape}")
    if not np.isfinite(flow).all():
        raise ShardError("flow frame holds NaN or inf values")
    header = _FLOW_MAGIC + np.array(flow.shape[1:], dtype="<u4").tobytes()
    return header + np.ascontiguousarray(flow, dtype="<f2").tobytes()


def decode_flow(data: bytes) -> np.ndarray:
    if data[:3] != _FLOW_MAGIC or len(data) < 11:
        raise ShardError("corrupt flow payload: missing header")
    height, width = np.frombuffer(data[3:11], dtype="<u4")
    body = np.frombuffer(data[11:], dtype="<f2")
    if body.size != 2 * int(height) * int(width):
        raise ShardError(f"corrupt flow payload: {body.size} values for 2×{height}×{width}")
    return body.reshape(2, int(height), int(width)).astype(np.float32)


@dataclass(frozen=True)
class Codec:
    name: str
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes], np.ndarray]
    compress_column: bool  # PNG/JPEG are already compressed; raw float16 is not
    labels: bool = False  # values are codes (ids, part indices, colour-coded limbs): resize by nearest neighbour
    channels_first: bool = False  # C×H×W arrays (flow); every other payload is H×W or H×W×C


CODECS: dict[str, Codec] = {
    "png_rgb": Codec("png_rgb", encode_rgb_png, decode_rgb, False),
    "jpeg_rgb": Codec("jpeg_rgb", make_jpeg_encoder(95), decode_rgb, False),
    # RGB pictures whose pixels are codes: DensePose IUV (part index, U, V), the official OpenPose rendering
    "png_rgb_nearest": Codec("png_rgb_nearest", encode_rgb_png, decode_rgb, False, labels=True),
    "png_label": Codec("png_label", encode_gray_png, decode_gray, False, labels=True),
    "png_mask": Codec("png_mask", encode_gray_png, decode_gray, False, labels=True),
    "png_instance": Codec("png_instance", encode_instance_png, decode_instance, False, labels=True),
    "png_planes": Codec("png_planes", encode_planes, decode_planes, False),
    "f16_flow": Codec("f16_flow", encode_flow, decode_flow, True, channels_first=True),
}


def get_codec(name: str, jpeg_quality: int | None = None) -> Codec:
    if name == "jpeg_rgb" and jpeg_quality is not None:
        return Codec("jpeg_rgb", make_jpeg_encoder(jpeg_quality), decode_rgb, False)
    try:
        return CODECS[name]
    except KeyError:
        raise ShardError(f"unknown payload codec {name!r}; known: {sorted(CODECS)}") from None
