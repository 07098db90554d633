import numpy as np
import pytest

from storage.errors import BadInputError
from storage.video import FramePolicy, VideoSource, decode, discover, encode, pick_codec, probe
from tests.storage.videos import moving_frames, write_avi, write_frame_folder, write_mp4


def test_mp4_round_trip_keeps_count_size_fps_and_content(tmp_path):
    frames = moving_frames(15, 64, 48)
    encode(tmp_path / "a.mp4", frames, 12)
    (source,) = discover(tmp_path / "a.mp4")
    info = probe(source)
    assert (info.width, info.height, round(info.fps)) == (64, 48, 12)
    decoded = list(decode(source))
    assert len(decoded) == 15 and decoded[0].shape == (48, 64, 3)
    assert np.abs(decoded[7].astype(float) - frames[7]).mean() < 8  # lossy, but the same picture


def test_outputs_are_h264_where_available():
    assert pick_codec() in {"libx264", "h264"}


def test_avi_and_mov_decode(tmp_path):
    write_avi(tmp_path / "a.avi", n=9)
    encode(tmp_path / "b.mov", moving_frames(7), 10)
    sources = {s.name: s for s in discover(tmp_path)}
    assert len(list(decode(sources["a"]))) == 9
    assert len(list(decode(sources["b"]))) == 7


def test_frame_folder_and_cityscapes_sequences(tmp_path):
    write_frame_folder(tmp_path / "plain", n=5)
    city = tmp_path / "leftImg8bit_sequence" / "train" / "aachen"
    write_frame_folder(city, n=4, names="aachen_000000_{:06d}_leftImg8bit.png")
    write_frame_folder(city, n=3, names="aachen_000001_{:06d}_leftImg8bit.png")
    sources = {s.name: s for s in discover(tmp_path)}
    assert set(sources) == {"plain", "aachen_000000", "aachen_000001"}
    assert len(list(decode(sources["aachen_000000"]))) == 4
    assert probe(sources["aachen_000001"], FramePolicy(frame_fps=17)).fps == 17
    assert len(list(decode(sources["plain"]))) == 5


def test_frame_folder_with_a_frame_of_another_size_names_it(tmp_path):
    folder = write_frame_folder(tmp_path / "seq", n=4)
    write_frame_folder(tmp_path / "other", n=1, width=32, height=32)
    (tmp_path / "other" / "00000.png").rename(folder / "00002.png")
    (source,) = discover(folder)
    with pytest.raises(BadInputError, match="00002.png.*32x32"):
        list(decode(source))


@pytest.mark.parametrize("mode,expect", [("resize", (24, 40)), ("crop", (24, 40)), ("fit", (24, 40))])
def test_frame_policy_sizes(mode, expect):
    frame = np.full((48, 64, 3), 100, np.uint8)
    out = FramePolicy(size=(40, 24), mode=mode).apply(frame)
    assert out.shape[:2] == expect and out.dtype == np.uint8


def test_fit_pads_and_crop_does_not():
    frame = np.full((48, 64, 3), 200, np.uint8)
    fitted = FramePolicy(size=(64, 64), mode="fit").apply(frame)
    cropped = FramePolicy(size=(64, 64), mode="crop").apply(frame)
    assert fitted[0].max() == 0 and fitted[32].min() == 200
    assert cropped.min() == 200


def test_bad_sources_name_the_input(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BadInputError, match="no videos or frame sequences"):
        discover(tmp_path)
    with pytest.raises(BadInputError, match="not a video file"):
        discover(tmp_path / "notes.txt")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(BadInputError, match="corrupt.mp4"):
        list(decode(VideoSource("corrupt", corrupt)))
    tiny = write_mp4(tmp_path / "tiny.mp4", n=3, width=8, height=8)
    with pytest.raises(BadInputError, match="too small"):
        list(decode(VideoSource("tiny", tiny)))
