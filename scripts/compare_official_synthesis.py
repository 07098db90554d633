"""Our synthesis of an official-semantics model vs NVIDIA's own test loop, frame by frame, on CPU.

    git clone https://github.com/NVIDIA/vid2vid /tmp/vid2vid   # read and run from there, never copied here
    python scripts/compare_official_synthesis.py --official-repo /tmp/vid2vid [--scales 2] [--frames 7]
    python scripts/compare_official_synthesis.py --official-repo /tmp/vid2vid --single-size 2048  # the 2048 preset's

Random weights (batch norm, fg branch, instance edges, 2 previous frames) are written in the official file
layout (``official_import``'s key maps, inverted), with a pix2pixHD single-frame G (``--single-size``: 512 a
GlobalGenerator, 2048 the LocalEnhancer of the 2048 street model, full size as their ``load_single_G`` builds it); our ``synthesize`` runs
them for each first-frame option, then a subprocess runs the official ``Vid2VidModelG.inference`` the way
``test.py`` does (windows of ``n_frames_G`` frames) with ``--use_real_img`` / ``--use_single_G`` /
``--no_first_img``, and prints max |official - ours| per frame. The official code targets torch 0.4 on CUDA:
the subprocess maps ``.cuda()`` to the CPU and gives ``grid_sample`` torch 0.4's ``align_corners=True``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

W, H = 64, 32
FLAGS = {"real": "--use_real_img", "model": "--use_single_G", "zeros": "--no_first_img"}


def ours(work: Path, scales: int, n_frames: int, single_size: int = 512) -> None:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from models.vid2vid.config import load_model_config
    from models.vid2vid.generator import Vid2VidGenerator
    from models.vid2vid.inference import synthesize
    from models.vid2vid.official_import import composite_key_map, single_frame_config, single_key_map

    config = load_model_config("tiny", name="compare", input={"width": W, "height": H, "sources": [
        {"name": "labels", "stage": "semantic", "encoding": "one_hot", "num_classes": 35},
        {"name": "instance", "stage": "instance", "encoding": "instance_edges"}]},
        generator={"ngf": 16, "n_downsampling": 2, "n_blocks": 9, "n_blocks_local": 3, "n_scales": scales,
                   "n_prev": 2, "norm": "batch", "foreground_classes": [26], "composition": "official",
                   "test_norm_stats": "batch"})
    torch.manual_seed(0)
    generator = Vid2VidGenerator(config)
    with torch.no_grad():  # visible flows, non-trivial batch norm affine parameters
        for scale in generator.scales:
            scale.flow_out[1].weight.normal_(0, 0.05)
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
    generator.eval()
    single = Vid2VidGenerator(single_frame_config(config, single_size)).eval()
    (work / "ckpt" / "compare").mkdir(parents=True)
    (work / "checkpoints" / "label2city_single").mkdir(parents=True)  # where the official code looks
    state = generator.state_dict()
    for s, mapping in composite_key_map(generator).items():
        torch.save({official: state[key] for official, key in mapping.items()}, work / "ckpt" / "compare" / f"latest_net_G{s}.pth")
    single_state = single.state_dict()
    torch.save({official: single_state[key] for official, key in single_key_map(single).items()},
               work / "checkpoints" / "label2city_single" / f"latest_net_G_{single_size}.pth")

    g = torch.Generator().manual_seed(1)
    texture = torch.nn.functional.avg_pool2d(torch.rand(1, 3, H, W + 3 * n_frames + 8, generator=g) * 2 - 1, 3, 1, 1)
    images = torch.stack([texture[..., 3 * t: 3 * t + W] for t in range(n_frames)], 1)
    semantic = torch.full((n_frames, H, W), 7, dtype=torch.long)  # road, sky on top, a car and a person moving
    semantic[:, : H // 4] = 23
    instance = torch.zeros(n_frames, H, W, dtype=torch.long)
    for t in range(n_frames):
        semantic[t, 14:24, 10 + 4 * t: 22 + 4 * t], instance[t, 14:24, 10 + 4 * t: 22 + 4 * t] = 26, 26001
        semantic[t, 4:12, 40 - 2 * t: 48 - 2 * t], instance[t, 4:12, 40 - 2 * t: 48 - 2 * t] = 11, 11
    frames = [{"semantic": semantic[t], "instance": instance[t], "real": images[0, t]} for t in range(n_frames)]
    outputs = {mode: torch.cat([o["image"] for o in synthesize(generator, frames, first_frame=mode,  # type: ignore[arg-type]
                                                                single_frame_generator=single)]) for mode in FLAGS}
    torch.save({"images": images, "semantic": semantic, "instance": instance, "ours": outputs}, work / "data.pt")


def official(work: Path, repo: Path, scales: int, single_size: int = 512) -> float:
    import torch
    import torch.nn.functional as F

    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.cuda.FloatTensor = torch.FloatTensor  # type: ignore[attr-defined, misc]
    torch.cuda.ByteTensor = lambda *size: torch.zeros(*size, dtype=torch.bool)  # type: ignore[attr-defined, misc]
    grid_sample = F.grid_sample
    F.grid_sample = lambda i, g, mode="bilinear", padding_mode="zeros", align_corners=None: grid_sample(  # type: ignore[assignment]
        i, g, mode=mode, padding_mode=padding_mode, align_corners=True)
    load = torch.nn.Module.load_state_dict

    def lenient(self, state, strict=True, **kw):  # noqa: ANN001, ANN202 - instance norm's unused running stats
        missing = set(self.state_dict()) - set(state)
        assert all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in missing), missing
        return load(self, state, strict=False)

    torch.nn.Module.load_state_dict = lenient  # type: ignore[method-assign]
    sys.path.insert(0, str(repo))
    os.chdir(work)
    from models.vid2vid_model_G import Vid2VidModelG  # the official package
    from options.test_options import TestOptions

    data = torch.load("data.pt")
    n_frames = data["semantic"].shape[0]
    worst = 0.0
    for mode, flag in FLAGS.items():
        sys.argv = ["test.py", "--name", "compare", "--label_nc", "35", "--loadSize", str(single_size), "--n_scales_spatial",
                    str(scales), "--use_instance", "--fg", "--fg_labels", "26", "--n_downsample_G", "2", "--ngf", "16",
                    "--gpu_ids", "-1", "--checkpoints_dir", "ckpt", "--dataroot", "datasets/Cityscapes/", flag]
        opt = TestOptions().parse(save=False)
        opt.batchSize = 1
        model = Vid2VidModelG()
        model.initialize(opt)
        for i in range(n_frames - 2):
            window = slice(i, i + 3)
            fake, _ = model.inference(data["semantic"][window].float().view(1, 3, 1, H, W),
                                      data["images"][:, window].contiguous().view(1, 3, 3, H, W),
                                      data["instance"][window].float().view(1, 3, 1, H, W))
            diff = float((fake[0] - data["ours"][mode][i + 2]).abs().max())
            worst = max(worst, diff)
            print(f"first frame {mode:5s} ({flag}): frame {i + 2}: max |official - ours| = {diff:.3g}", flush=True)
    print(f"worst: {worst:.3g}")
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-repo", type=Path, required=True, help="a checkout of github.com/NVIDIA/vid2vid")
    parser.add_argument("--scales", type=int, default=2)
    parser.add_argument("--frames", type=int, default=7)
    parser.add_argument("--single-size", type=int, choices=[512, 2048], default=512,
                        help="which released single-frame G makes the first frames (their --loadSize)")
    parser.add_argument("--side", choices=["both", "official"], default="both", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global W, H
    if args.single_size == 2048:  # the LocalEnhancer's global part downsamples 32x: 2 pixels high at least
        W, H = 128, 64
    if args.side == "official":
        return 0 if official(args.work, args.official_repo.resolve(), args.scales, args.single_size) == 0 else 1
    if not (args.official_repo / "models" / "vid2vid_model_G.py").is_file():
        parser.error(f"--official-repo {args.official_repo}: no models/vid2vid_model_G.py there")
    with tempfile.TemporaryDirectory() as tmp:
        ours(Path(tmp), args.scales, args.frames, args.single_size)
        # a fresh interpreter: the official code's `models` package would clash with ours
        return subprocess.call([sys.executable, __file__, "--side", "official", "--work", tmp, "--official-repo",
                                str(args.official_repo), "--scales", str(args.scales), "--single-size", str(args.single_size)], stdout=sys.stdout,
                               cwd=tmp, env={**os.environ, "PYTHONPATH": ""})


if __name__ == "__main__":
    sys.exit(main())
