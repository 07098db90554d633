"""Flow: the correlation layer and warp against naive references, FlowNet2's architecture and official
checkpoint layout, and DIS accuracy against the synthetic street's exact flow."""

import dataclasses

import numpy as np
import pytest
import torch

from models.preprocess.correlation import correlation, resample2d
from models.preprocess.flow_dis import DISFlow
from models.preprocess.flownet2 import FlowNet2
from models.preprocess.run import run_flow
from models.weights import REGISTRY, ChecksumMismatchError, MissingWeightsError, WeightsError, load_state_dict
from storage.synthetic import StreetScene


def naive_correlation(f1, f2, pad, k, md, s1, s2):
    """Loop-for-loop transcription of flownet2-pytorch's Correlation_forward CUDA kernel (centred patches)."""
    b, c, h, w = f1.shape
    p1 = np.pad(f1.numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    p2 = np.pad(f2.numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    kr, rad = (k - 1) // 2, md // s2
    size = 2 * rad + 1
    border = md + kr
    oh, ow = -(-(h + 2 * pad - 2 * border) // s1), -(-(w + 2 * pad - 2 * border) // s1)
    out = np.zeros((b, size * size, oh, ow), np.float64)
    for n in range(b):
        for i in range(oh):
            for j in range(ow):
                y1, x1 = i * s1 + border, j * s1 + border  # = kernel's i*s1 + md when k = 1
                for tj in range(-rad, rad + 1):
                    for ti in range(-rad, rad + 1):
                        y2, x2 = y1 + tj * s2, x1 + ti * s2
                        total = 0.0
                        for dj in range(-kr, kr + 1):
                            for di in range(-kr, kr + 1):
                                total += float((p1[n, :, y1 + dj, x1 + di] * p2[n, :, y2 + dj, x2 + di]).sum())
                        out[n, (tj + rad) * size + ti + rad, i, j] = total / (k * k * c)
    return out


@pytest.mark.parametrize("pad,k,md,s1,s2", [(4, 1, 4, 1, 2), (3, 3, 2, 1, 1), (4, 1, 4, 2, 2)])
def test_correlation_matches_the_cuda_kernel_semantics(pad, k, md, s1, s2):
    g = torch.Generator().manual_seed(0)
    f1, f2 = torch.randn(2, 3, 7, 9, generator=g), torch.randn(2, 3, 7, 9, generator=g)
    ours = correlation(f1, f2, pad, k, md, s1, s2).double().numpy()
    ref = naive_correlation(f1, f2, pad, k, md, s1, s2)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_correlation_peaks_at_the_true_displacement():
    f1 = torch.randn(1, 64, 16, 16, generator=torch.Generator().manual_seed(1))
    f2 = torch.roll(f1, shifts=(2, -4), dims=(2, 3))  # content moves down 2, left 4
    corr = correlation(f1, f2, 8, 1, 8, 1, 2)  # radius 4, displacement steps of 2
    best = corr[0, :, 8, 8].argmax().item()
    assert divmod(best, 9) == ((2 // 2) + 4, (-4 // 2) + 4)


def test_resample2d_is_bilinear_with_clamped_border():
    img = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(1, 2, 5, 6)
    flow = torch.zeros(1, 2, 5, 6)
    flow[:, 0], flow[:, 1] = 0.5, -0.25
    flow[0, 0, 0, 0] = -3.0  # far outside: clamps to the border column
    out = resample2d(img, flow)
    x, y = 2, 3  # interior: x + 0.5, y - 0.25
    expected = (0.75 * (0.5 * img[0, :, y, x] + 0.5 * img[0, :, y, x + 1])
                + 0.25 * (0.5 * img[0, :, y - 1, x] + 0.5 * img[0, :, y - 1, x + 1]))
    torch.testing.assert_close(out[0, :, y, x], expected)
    torch.testing.assert_close(out[0, :, 0, 0], img[0, :, 0, 0])
    # x + 0.5 past the right edge clamps to the last column; y - 0.25 still interpolates rows 3 and 4
    torch.testing.assert_close(out[0, :, 4, 5], 0.75 * img[0, :, 4, 5] + 0.25 * img[0, :, 3, 5])


def test_flownet2_architecture_checkpoint_layout_and_rejections(tmp_path):
    torch.manual_seed(0)
    net = FlowNet2()  # random init: a stand-in in the official layout, its numbers mean nothing
    assert sum(p.numel() for p in net.parameters()) == 162_518_834  # the official model's count
    state = net.state_dict()
    for prefix in ("flownetc.", "flownets_1.", "flownets_2.", "flownets_d.", "flownetfusion."):
        assert any(k.startswith(prefix) for k in state)
    assert state["flownetc.conv3_1.0.weight"].shape == (256, 473, 3, 3)  # 32 redirected + 441 correlation channels
    assert state["flownetfusion.conv0.0.weight"].shape == (64, 11, 3, 3)
    path = tmp_path / REGISTRY["flownet2"].filename
    torch.save({"state_dict": state, "epoch": 0, "best_EPE": 1.5}, path)

    from models.preprocess.flow_nets import FlowNet2Flow

    backend = FlowNet2Flow(weights_dir=tmp_path)
    loaded = backend.net.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in ("flownetc.conv1.0.weight", "flownetfusion.predict_flow0.bias"))
    with torch.no_grad():
        assert backend.net(torch.rand(1, 3, 2, 64, 64) * 255).shape == (1, 2, 64, 64)
    frames = [np.random.default_rng(i).integers(0, 255, (40, 70, 3), dtype=np.uint8) for i in range(2)]
    (flow, occlusion), = backend(frames[:1], frames[1:])  # resized to 64x64 inside, back to 40x70
    assert flow.shape == (2, 40, 70) and flow.dtype == np.float32 and occlusion.shape == (40, 70)
    del backend, loaded, net

    spec = REGISTRY["flownet2"]
    with pytest.raises(ChecksumMismatchError, match="does not match the registered checksum"):
        load_state_dict(dataclasses.replace(spec, sha256="0" * 64, unverified=False), tmp_path)
    path.write_bytes(path.read_bytes()[: 1 << 20])  # truncated download
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_state_dict(spec, tmp_path)
    path.unlink()
    with pytest.raises(MissingWeightsError, match="FlowNet2_checkpoint.pth.tar"):
        FlowNet2Flow(weights_dir=tmp_path)


def test_raft_loads_a_standin_in_torchvision_layout(tmp_path, monkeypatch):
    from torchvision.models.optical_flow import raft_large

    from models.preprocess.flow_nets import RAFTFlow
    from models.weights import file_sha256

    spec = REGISTRY["raft_large"]
    path = tmp_path / spec.filename
    torch.save(raft_large(weights=None).state_dict(), path)
    with pytest.raises(ChecksumMismatchError):  # a random stand-in is not the published file
        RAFTFlow(weights_dir=tmp_path)
    monkeypatch.setitem(REGISTRY, "raft_large", dataclasses.replace(spec, sha256=file_sha256(path)))
    backend = RAFTFlow(weights_dir=tmp_path, iterations=2)
    frames = [np.random.default_rng(i).integers(0, 255, (36, 60, 3), dtype=np.uint8) for i in range(3)]
    out = list(run_flow(backend, frames, batch_size=2))
    assert [o["has_flow"] for o in out] == [True, True, False]
    assert all(o["payload"].shape == (2, 36, 60) and o["occlusion"].shape == (36, 60) for o in out)


def _street(n=5, width=256, height=128, seed=5):
    return list(StreetScene(width, height, n, seed).frames())


def test_dis_flow_on_the_synthetic_street_is_within_an_epe_bound_of_the_exact_flow():
    truth = _street()
    out = list(run_flow(DISFlow("medium"), [f["rgb"] for f in truth], batch_size=4))
    assert len(out) == len(truth) and not out[-1]["has_flow"] and out[-1]["occlusion"].all()
    epes, zero_epes = [], []
    for est, ref in zip(out[:-1], truth[:-1]):
        valid = ref["occlusion"] == 0
        epes.append(np.linalg.norm(est["payload"] - ref["flow"], axis=0)[valid].mean())
        zero_epes.append(np.linalg.norm(ref["flow"], axis=0)[valid].mean())
    epe, baseline = float(np.mean(epes)), float(np.mean(zero_epes))
    assert baseline > 1.5, "the scene must actually move for the bound to mean anything"
    assert epe < 1.0 and epe < 0.3 * baseline, (epe, baseline)  # measured: 0.64 vs 3.17 px


def test_dis_occlusion_marks_pixels_that_leave_the_frame():
    truth = _street(n=2)
    (flow, occlusion), = DISFlow()([truth[0]["rgb"]], [truth[1]["rgb"]])
    h, w = occlusion.shape
    leaving = (np.arange(w)[None, :] + truth[0]["flow"][0]) < -1
    assert leaving.any() and occlusion[leaving].mean() > 0.9
    assert occlusion.mean() < 0.5
    assert flow.dtype == np.float32 and np.isfinite(flow).all()


def test_wrong_frame_size_is_bad_input():
    from models.preprocess.base import PreprocessInputError

    frames = [np.zeros((32, 64, 3), np.uint8), np.zeros((32, 60, 3), np.uint8)]
    with pytest.raises(PreprocessInputError, match="60x32"):
        list(run_flow(DISFlow(), frames, expected=(32, 64)))
