import numpy as np
import pytest

from storage.codecs import get_codec
from storage.errors import ShardError


def test_rgb_png_round_trip_is_exact():
    frame = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    codec = get_codec("png_rgb")
    assert np.array_equal(codec.decode(codec.encode(frame)), frame)


def test_rgb_jpeg_round_trip_is_close_and_keeps_channel_order():
    frame = np.zeros((32, 32, 3), np.uint8)
    frame[..., 0] = 200  # pure red must stay red, not become blue
    decoded = get_codec("jpeg_rgb", jpeg_quality=95).decode(get_codec("jpeg_rgb", jpeg_quality=95).encode(frame))
    assert np.abs(decoded.astype(int) - frame).max() <= 4
    assert decoded[..., 0].mean() > 190 and decoded[..., 2].mean() < 10


def test_labels_and_instances_are_exact():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 19, (30, 50), dtype=np.uint8)
    labels[0, 0] = 255
    instances = rng.integers(0, 65535, (30, 50), dtype=np.uint16)  # values far above 255 survive
    assert np.array_equal(get_codec("png_label").decode(get_codec("png_label").encode(labels)), labels)
    assert np.array_equal(get_codec("png_instance").decode(get_codec("png_instance").encode(instances)), instances)


def test_flow_round_trip_within_float16_tolerance():
    flow = np.random.default_rng(2).normal(scale=20, size=(2, 17, 33)).astype(np.float32)
    decoded = get_codec("f16_flow").decode(get_codec("f16_flow").encode(flow))
    assert decoded.shape == flow.shape
    np.testing.assert_allclose(decoded, flow, rtol=1e-3, atol=1e-3)


def test_flow_with_nan_is_refused():
    flow = np.zeros((2, 4, 4), np.float32)
    flow[0, 1, 1] = np.nan
    with pytest.raises(ShardError, match="NaN"):
        get_codec("f16_flow").encode(flow)


def test_wrong_dtype_and_corrupt_payload_are_errors():
    with pytest.raises(ShardError, match="uint16"):
        get_codec("png_instance").encode(np.zeros((4, 4), np.uint8))
    with pytest.raises(ShardError, match="corrupt"):
        get_codec("png_rgb").decode(b"not a png at all")
    with pytest.raises(ShardError, match="unknown payload codec"):
        get_codec("webp_rgb")
