import cv2
import numpy as np

from storage.synthetic import BUILDING, CAR, PERSON, ROAD, SIDEWALK, SKY, VEGETATION, StreetScene

W, H, T = 128, 64, 10


def _clip(seed=5):
    return list(StreetScene(W, H, T, seed).frames())


def test_flow_warps_each_frame_onto_the_next_outside_occlusions():
    frames = _clip()
    ys, xs = np.mgrid[:H, :W].astype(np.float32)
    for t in range(T - 1):
        flow, valid = frames[t]["flow"], frames[t]["occlusion"] == 0
        following = frames[t + 1]["rgb"].astype(np.float32)
        # backward-warp frame t+1 to t along the forward flow t -> t+1
        warped = cv2.remap(following, xs + flow[0], ys + flow[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        error = np.abs(warped - frames[t]["rgb"]).mean(-1)
        unwarped = np.abs(following - frames[t]["rgb"]).mean(-1)
        assert valid.mean() > 0.85
        assert error[valid].mean() < 2.0, f"warp error {error[valid].mean():.2f} at frame {t}"
        assert unwarped[valid].mean() > 3 * error[valid].mean()  # the scene really moves
        labels_warped = frames[t + 1]["semantic"][ys.astype(int), np.clip(np.rint(xs + flow[0]), 0, W - 1).astype(int)]
        assert (labels_warped[valid] == frames[t]["semantic"][valid]).mean() > 0.995
    assert not frames[-1]["has_flow"] and frames[-1]["occlusion"].all()


def test_labels_and_instances_are_consistent():
    for frame in _clip(seed=11):
        label, instance = frame["semantic"], frame["instance"]
        assert set(np.unique(label)) <= {ROAD, SIDEWALK, BUILDING, 5, VEGETATION, SKY, PERSON, CAR}
        things = np.isin(label, [PERSON, CAR])
        assert (instance[things] > 0).all() and (instance[~things] == 0).all()
        assert np.array_equal(instance[things] // 1000, label[things])


def test_same_seed_same_clip_other_seed_other_clip():
    a, b, c = _clip(3), _clip(3), _clip(4)
    assert all(np.array_equal(x["rgb"], y["rgb"]) for x, y in zip(a, b))
    assert not np.array_equal(a[0]["rgb"], c[0]["rgb"])


def test_surfaces_are_textured_not_flat_colours():
    frame = _clip(7)[0]
    for label in (ROAD, BUILDING, SKY):
        pixels = frame["rgb"][frame["semantic"] == label].astype(np.float32)
        assert len(pixels) > 50 and pixels.std(0).mean() > 4, f"class {label} looks flat"
