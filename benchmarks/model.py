"""vid2vid model benchmark: speed/memory of G (and a training step) for given architecture knobs, and a
CPU learning check.

    python benchmarks/model.py --ngf 128 --n-downsampling 3 --n-blocks 9 --scales 1 --size 512x256 \
        --mode inference --steps 2                     # the official default architecture, one frame/step
    python benchmarks/model.py --mode train --size 64x32 --ngf 16 --steps 5
    python benchmarks/model.py --mode train --preset demo_street --seq-len 6 --threads 1 --steps 6  # fp32 vs bf16
    python benchmarks/model.py --learning-check --minutes 3
    python benchmarks/model.py --official-street --size 512x256 --mode inference   # NVIDIA's label2city_2048 G
    python benchmarks/model.py --official-code ~/vid2vid --size 512x256   # vs NVIDIA's own code, same run
    python benchmarks/model.py --official-code ~/vid2vid --mode train --size 256x128   # their train.py step vs ours

``--official-code DIR`` (a checkout of github.com/NVIDIA/vid2vid, outside this repo) builds NVIDIA's
label2city_2048 generator with random weights in their code, imports it into ours through our import path,
feeds both the same inputs and prints the max abs difference of frame, flow and mask, then times both,
interleaved (ours, theirs, ours, ...) so that load on a shared machine hits both alike (official_code.py).
With ``--mode train`` it times a training step instead: scripts/compare_official_training.py --time (their
train.py order on their Vid2VidModelG/D with their random weights, imported into ours; the same sequences,
reference flow and stand-in VGG), per sequence for theirs, our exact float32 mode and our bf16 mode, with each
mode's worst relative loss-term difference from theirs.

Each measurement prints one line of ``key=value`` pairs.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.vid2vid.batch import encode_source, frame_background_mask, reference_backward_flows  # noqa: E402
from models.vid2vid.config import ModelConfig, load_model_config  # noqa: E402
from models.vid2vid.checkpoint import load_generator  # noqa: E402
from models.vid2vid.generator import ScaleHistory, Vid2VidGenerator  # noqa: E402
from models.vid2vid.official_import import import_official  # noqa: E402
from models.vid2vid.inference import optimize_for_inference, synthesize  # noqa: E402
from models.vid2vid.layers import count_parameters  # noqa: E402
from models.vid2vid.trainer import Vid2VidTrainer  # noqa: E402
from models.vid2vid.warp import warp  # noqa: E402
from models.training.precision import autocast, prepare_modules  # noqa: E402


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


#: NVIDIA's released label2city_2048 architecture (415,075,371 generator parameters): 35 label ids +
#: instance edges, 3 scales of ngf 128 / 3 downsamplings / 9 + 3 blocks, batch norm, fg = label id 26.
OFFICIAL_STREET = {"ngf": 128, "n_downsampling": 3, "n_blocks": 9, "n_blocks_local": 3, "scales": 3, "L": 2,
                   "fg": True, "no_flow": False, "num_classes": 35, "ndf": 64, "num_d": 4}


def build_config(args: argparse.Namespace) -> ModelConfig:
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.official_street:
        for key, value in OFFICIAL_STREET.items():
            setattr(args, key, value)
    official = {"norm": "batch", "composition": "official", "test_norm_stats": "batch",
                "foreground_classes": [26]} if args.official_street else {}
    return load_model_config(
        "tiny",
        name="bench",
        input={"width": width, "height": height, "sources": [
            {"name": "labels", "stage": "semantic", "encoding": "one_hot", "num_classes": args.num_classes},
            {"name": "instance", "stage": "instance", "encoding": "instance_edges"}]},
        generator={
            "ngf": args.ngf,
            "n_downsampling": args.n_downsampling,
            "n_blocks": args.n_blocks,
            "n_blocks_local": args.n_blocks_local,
            "n_scales": args.scales,
            "n_prev": args.L,
            "use_fg_prior": args.fg,
            "use_flow_warping": args.L > 0 and not args.no_flow,
            **official,
        },
        discriminator={"n_frames_d": args.K, "ndf": args.ndf, "num_d": args.num_d, "n_layers": 3,
                       "use_video_discriminator": args.L > 0},
        frame_by_frame=args.L == 0,
        train={"frames_per_step": args.frames_per_step, "initial_seq_len": args.seq_len, "max_seq_len": args.seq_len,
               "epochs_per_scale": 1000},
    )


def random_batch(config: ModelConfig, batch: int, frames: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    h, w = config.input.height, config.input.width
    return {
        "semantic": torch.randint(0, config.input.labels.num_classes, (batch, frames, h, w), generator=g),
        "instance": torch.randint(0, 4, (batch, frames, h, w), generator=g),
        "image": torch.rand(batch, frames, 3, h, w, generator=g) * 2 - 1,
        "flow": torch.randn(batch, frames - 1, 2, h, w, generator=g),
    }


def bench_inference(args: argparse.Namespace, config: ModelConfig) -> None:
    gen = Vid2VidGenerator(config)
    params = count_parameters(gen)
    optimize_for_inference(gen, channels_last=args.channels_last)
    batch = random_batch(config, args.batch, config.generator.n_prev + 1)
    L = config.generator.n_prev
    source = encode_source(config, batch)
    bg = frame_background_mask(config, batch["semantic"][:, -1], batch["image"][:, -1])
    prev = batch["image"][:, :L] if L else None
    rss0 = _rss_mb()
    with torch.inference_mode():
        for step in range(args.steps + args.warmup):
            start = time.perf_counter()
            out = gen(source, prev, bg)
            seconds = time.perf_counter() - start
            if step >= args.warmup:
                print(
                    f"mode=inference step={step - args.warmup} size={args.size} batch={args.batch} ngf={args.ngf} "
                    f"down={args.n_downsampling} blocks={args.n_blocks} scales={args.scales} fg={args.fg} L={L} "
                    f"G_params={params} s_per_frame={seconds / args.batch:.3f} peak_rss_delta_mb={_rss_mb() - rss0:.0f} "
                    f"channels_last={args.channels_last}",
                    flush=True,
                )
    del out


def bench_train(args: argparse.Namespace, config: ModelConfig) -> None:
    """The training step in float32 (exact) and in bf16 autocast (+ channels-last on CPU), each its own trainer
    from the same weights on the same batch, timed interleaved (fp32, bf16, fp32, ...) so that load on a shared
    machine hits both alike; the first step's losses (same weights, same batch) give the max loss difference."""
    device = torch.device(args.device)
    modes = ["fp32"] + (["bf16"] if args.train_modes == "both" else [])
    trainers = {}
    for mode in modes:
        trainer = Vid2VidTrainer(config, device=device)
        trainer.set_epoch(config.train.epochs_per_scale * (config.generator.n_scales - 1))  # every scale, full size
        prepare_modules(device, mode, trainer.G, trainer.D)
        trainers[mode] = trainer
    g_params, d_params = count_parameters(trainers["fp32"].G), count_parameters(trainers["fp32"].D)
    batch = random_batch(config, args.batch, args.seq_len) if not args.preset else street_batch(config, args.batch,
                                                                                                args.seq_len)
    wall: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    first: dict[str, dict[str, float]] = {}
    rss0 = _rss_mb()
    load_before = _load()
    for step in range(args.steps + args.warmup):
        for mode in modes:
            start, start_cpu = time.perf_counter(), time.process_time()
            with autocast(device, mode):
                losses = trainers[mode].train_step(batch)
            seconds = time.perf_counter() - start
            first.setdefault(mode, losses)
            if step >= args.warmup:
                wall[mode].append(seconds)
                cpu[mode].append(time.process_time() - start_cpu)
                print(
                    f"mode=train precision={mode} step={step - args.warmup} size={config.input.width}x"
                    f"{config.input.height} batch={args.batch} seq_len={args.seq_len} "
                    f"config={config.name} L={config.generator.n_prev} n_scales={losses['n_scales']:.0f} "
                    f"G_params={g_params} D_params={d_params} threads={torch.get_num_threads()} "
                    f"s_per_step={seconds:.3f} G_total={losses['G_total']:.3f} D_total={losses['D_total']:.3f} "
                    f"peak_rss_delta_mb={_rss_mb() - rss0:.0f}",
                    flush=True,
                )
    if "bf16" in modes:
        rel = max(abs(first["bf16"][k] - v) / max(abs(v), 1e-8) for k, v in first["fp32"].items()
                  if k.startswith(("G_", "D_")) and v)
        fp32_s, bf16_s = _median(wall["fp32"]), _median(wall["bf16"])
        fp32_cpu, bf16_cpu = _median(cpu["fp32"]), _median(cpu["bf16"])
        print(f"mode=train summary interleaved=fp32,bf16 steps={args.steps} fp32_s_per_step={fp32_s:.3f} "
              f"bf16_s_per_step={bf16_s:.3f} speedup={fp32_s / bf16_s:.2f}x cpu_speedup={fp32_cpu / bf16_cpu:.2f}x "
              f"max_loss_rel_diff_first_step={rel:.3g} channels_last={device.type == 'cpu'} "
              f"fp32_all={_listed(wall['fp32'])} bf16_all={_listed(wall['bf16'])} "
              f"loadavg_before={load_before} loadavg_after={_load()}", flush=True)


def street_batch(config: ModelConfig, batch: int, frames: int) -> dict[str, torch.Tensor]:
    """``batch`` windows of the synthetic street at the config's size (labels, instances, exact flow)."""
    clips = [synthetic_clip(config.input.width, config.input.height, frames, seed=k) for k in range(batch)]
    return {key: torch.cat([c[key] for c in clips]) for key in clips[0]}


# ------------------------------------------------------------------------------------- vs the official code
def blocky_ids(shape: tuple[int, ...], high: int, cell: int, g: torch.Generator) -> torch.Tensor:
    """Piecewise-constant ids (cells of ``cell`` pixels): label-map-like regions, edges and foreground."""
    *lead, h, w = shape
    coarse = torch.randint(0, high, (*lead, -(-h // cell), -(-w // cell)), generator=g)
    return coarse.repeat_interleave(cell, -2).repeat_interleave(cell, -1)[..., :h, :w].contiguous()


def ours_step(gen: Vid2VidGenerator, config: ModelConfig, labels: torch.Tensor, instance: torch.Tensor,
              history: ScaleHistory, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """One frame as our synthesis makes it: encode the L+1 sources, the fg mask, every scale from its own
    previous outputs (the official recurrence); the history gets this frame's pyramid."""
    source = encode_source(config, {"semantic": labels, "instance": instance}).to(dtype)
    bg = frame_background_mask(config, labels[:, -1], source[:, -1])
    out = gen(source, history.previous(), bg, return_pyramid=True)
    history.push(out["pyramid"])  # type: ignore[arg-type]
    return out


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def _load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def vs_official(args: argparse.Namespace) -> None:
    """Same weights, same inputs, same run: max abs differences, then interleaved s/frame and the ratio."""
    if str(Path(__file__).resolve().parent) not in sys.path:  # imported from elsewhere (benchmarks/gpu.py, tests)
        sys.path.append(str(Path(__file__).resolve().parent))
    from official_code import OfficialGenerator, check_checkout, import_package, street_options, write_random_generator

    root = check_checkout(args.official_code)
    package = import_package(root)
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="vid2vid-official-") as tmp:
        opt = street_options(Path(tmp) / "checkpoints")
        write_random_generator(package, opt, seed=args.seed)
        model_file = Path(tmp) / "imported.pt"
        import_official(Path(opt.checkpoints_dir) / opt.name, model_file, preset="label2city_2048")
        gen, config = load_generator(model_file)
        theirs = OfficialGenerator(package, opt)
    optimize_for_inference(gen, channels_last=args.channels_last)
    params = count_parameters(gen)
    if params != theirs.parameters():
        raise SystemExit(f"error: parameter counts differ: ours {params:,}, official {theirs.parameters():,}")
    L = config.generator.n_prev
    g = torch.Generator().manual_seed(args.seed)
    labels = blocky_ids((1, L + 1, height, width), 35, 16, g)
    instance = blocky_ids((1, L + 1, height, width), 4, 32, g)
    images = torch.rand(1, L + 1, 3, height, width, generator=g) * 2 - 1

    # numeric check: the first frame (previous frames = the real ones) and the next (its own outputs); with
    # --fp64-reference also each side's distance from the same generator computed in float64 (float32's own error)
    history = ScaleHistory(L, config.generator.n_scales)
    history.start(images[:, :L])
    exact = None
    if args.fp64_reference:
        exact = Vid2VidGenerator(config).double()
        exact.load_state_dict(gen.state_dict())
        exact_history = ScaleHistory(L, config.generator.n_scales)
        exact_history.start(images[:, :L].double())
    theirs.reset()
    worst = 0.0
    for frame in range(2):
        official = theirs.step(labels, images, instance)
        with torch.inference_mode():
            out = ours_step(gen, config, labels, instance, history)
        keys = {"frame": "image", "flow": "flow", "mask": "mask"}
        diffs = {name: _max_diff(out[key], official[key]) for name, key in keys.items()}
        worst = max(worst, *diffs.values())
        line = " ".join(f"max_abs_diff_{k}={v:.3g}" for k, v in diffs.items())
        if exact is not None:
            with torch.inference_mode():
                ref = ours_step(exact, config, labels, instance, exact_history, torch.float64)
            line += " " + " ".join(f"{side}_vs_fp64_{name}={_max_diff(outputs[key], ref[key]):.3g}"
                                   for side, outputs in (("ours", out), ("official", official))
                                   for name, key in keys.items())
        print(f"mode=vs-official check frame={frame} size={args.size} G_params={params} "
              f"channels_last={args.channels_last} {line}", flush=True)
    print(f"mode=vs-official identical_within_1e-4={'yes' if worst <= 1e-4 else 'NO'} max_abs_diff={worst:.3g}",
          flush=True)
    del exact

    # speed, interleaved: ours, theirs, ours, theirs ... wall seconds and CPU seconds of this process (all its
    # threads: on a shared machine the CPU time is the steadier measure of the work each side does)
    wall: dict[str, list[float]] = {"ours": [], "official": []}
    cpu: dict[str, list[float]] = {"ours": [], "official": []}
    load_before = _load()
    for step in range(args.warmup + args.steps):
        for name in ("ours", "official"):
            start, start_cpu = time.perf_counter(), time.process_time()
            if name == "ours":
                with torch.inference_mode():
                    ours_step(gen, config, labels, instance, history)
            else:
                theirs.step(labels, images, instance)
            if step >= args.warmup:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    ours_s, official_s, ours_cpu, official_cpu = (_median(t) for t in (wall["ours"], wall["official"], cpu["ours"],
                                                                     cpu["official"]))
    print(f"mode=vs-official inference size={args.size} G_params={params} threads={torch.get_num_threads()} "
          f"steps={args.steps} ours_s_per_frame={ours_s:.3f} official_s_per_frame={official_s:.3f} "
          f"speedup={official_s / ours_s:.2f}x ours_cpu_s={ours_cpu:.3f} official_cpu_s={official_cpu:.3f} "
          f"cpu_speedup={official_cpu / ours_cpu:.2f}x ours_all={_listed(wall['ours'])} "
          f"official_all={_listed(wall['official'])} channels_last={args.channels_last} "
          f"loadavg_before={load_before} loadavg_after={_load()}", flush=True)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _listed(values: list[float]) -> str:
    return ",".join(f"{v:.2f}" for v in values)


# ---------------------------------------------------------------------------------------------- learning check
def synthetic_clip(width: int, height: int, frames: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """One clip from the storage-side synthetic street (exact flow), or a moving texture if it is absent."""
    try:
        import numpy as np

        from storage.synthetic import StreetScene

        rows = list(StreetScene(width, height, frames, seed).frames())
        image = torch.from_numpy(np.stack([r["rgb"] for r in rows])).permute(0, 3, 1, 2).float() / 127.5 - 1
        return {
            "image": image[None],
            "semantic": torch.from_numpy(np.stack([r["semantic"] for r in rows]).astype(np.int64))[None],
            "instance": torch.from_numpy(np.stack([r["instance"] for r in rows]).astype(np.int64))[None],
            "flow": torch.from_numpy(np.stack([r["flow"] for r in rows[:-1]]))[None],
            "occlusion": torch.from_numpy(np.stack([r["occlusion"] for r in rows[:-1]]).astype(np.float32))[None, :, None],
        }
    except ImportError:
        from tests.models.helpers_vid2vid import moving_clip

        return moving_clip(T=frames, H=height, W=width, seed=seed)


def evaluate(gen: Vid2VidGenerator, clip: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(PSNR in dB vs the real frames, temporal warp error): frames generated recursively from the first real one."""
    T = clip["image"].shape[1]
    frames = [{"semantic": clip["semantic"][:, t], "instance": clip["instance"][:, t]} for t in range(T)]
    gen.eval()
    outs = [o["image"] for o in synthesize(gen, frames, first_frame="real", first_image=clip["image"][:, 0])]
    fake = torch.stack(outs, 1)[:, 1:]
    real = clip["image"][:, 1:]
    mse = float(((fake - real) / 2).pow(2).mean())
    backward, conf = reference_backward_flows(clip)
    assert backward is not None
    errors = []
    for t in range(2, T):
        warped = warp(outs[t - 1], backward[:, t - 1])
        weight = conf[:, t - 1] if conf is not None else torch.ones_like(warped[:, :1])
        errors.append(float(((outs[t] - warped).abs() * weight).sum() / (weight.sum() * 3).clamp_min(1)))
    return 10 * math.log10(1 / max(mse, 1e-10)), sum(errors) / len(errors)


def learning_check(args: argparse.Namespace) -> None:
    clip = synthetic_clip(64, 32, 12)
    seconds_each = args.minutes * 60 / 2
    for label, flow in (("flow", True), ("no-flow", False)):
        config = load_model_config(
            "tiny",
            name=f"learning-{label}",
            generator={"n_scales": 1, "use_flow_warping": flow},
            train={"lr": 5e-4, "initial_seq_len": 6, "max_seq_len": 6, "frames_per_step": 4, "epochs_per_scale": 1000},
        )
        trainer = Vid2VidTrainer(config)
        psnr0, warp0 = evaluate(trainer.G.generator, clip)
        start, steps = time.perf_counter(), 0
        while (steps < args.learning_steps) if args.learning_steps else (time.perf_counter() - start < seconds_each):
            trainer.train_step(clip)
            steps += 1
        psnr, warp_err = evaluate(trainer.G.generator, clip)
        print(
            f"mode=learning-check model={label} size=64x32 steps={steps} seconds={time.perf_counter() - start:.0f} "
            f"psnr_untrained_db={psnr0:.2f} psnr_trained_db={psnr:.2f} warp_error_untrained={warp0:.4f} "
            f"warp_error_trained={warp_err:.4f}",
            flush=True,
        )


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("train", "inference"), default="inference")
    p.add_argument("--official-street", action="store_true", help="NVIDIA's label2city_2048 architecture")
    p.add_argument("--preset", help="--mode train: a model config preset (e.g. demo_street) on synthetic street "
                                    "windows instead of the architecture knobs")
    p.add_argument("--train-modes", choices=("both", "fp32"), default="both",
                   help="--mode train: time fp32 and bf16 interleaved (both), or fp32 only")
    p.add_argument("--device", default="cpu")
    p.add_argument("--official-code", metavar="DIR",
                   help="a checkout of github.com/NVIDIA/vid2vid: compare with it in the same run (label2city_2048)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fp64-reference", action="store_true",
                   help="--official-code: also each side's max abs distance from the float64 result")
    p.add_argument("--ngf", type=int, default=16)
    p.add_argument("--n-downsampling", type=int, default=2)
    p.add_argument("--n-blocks", type=int, default=2)
    p.add_argument("--n-blocks-local", type=int, default=1)
    p.add_argument("--scales", type=int, default=1)
    p.add_argument("--fg", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--no-flow", action="store_true")
    p.add_argument("--L", type=int, default=2)
    p.add_argument("--K", type=int, default=3)
    p.add_argument("--ndf", type=int, default=16)
    p.add_argument("--num-d", type=int, default=2)
    p.add_argument("--num-classes", type=int, default=19)
    p.add_argument("--size", default="64x32", help="WxH")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=4)
    p.add_argument("--frames-per-step", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    p.add_argument("--learning-check", action="store_true")
    p.add_argument("--minutes", type=float, default=4.0, help="learning check: wall-clock budget for both models")
    p.add_argument("--learning-steps", type=int, default=0, help="learning check: fixed steps per model (fairer under load)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.learning_check:
        learning_check(args)
        return
    if args.official_code and args.mode == "train":
        import subprocess

        width, height = args.size.split("x")
        script = Path(__file__).resolve().parents[1] / "scripts" / "compare_official_training.py"
        raise SystemExit(subprocess.call([sys.executable, str(script), "--official-repo", str(args.official_code),
                                          "--time", "--scales", str(args.scales), "--fg", "on" if args.fg else "off",
                                          "--size", f"{height}x{width}", "--sequences", str(args.steps + 1)]))
    if args.official_code:
        try:
            vs_official(args)
        except ValueError as error:  # OfficialCodeError, OfficialImportError: a bad folder, named
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        return
    config = load_model_config(args.preset) if args.preset else build_config(args)
    (bench_inference if args.mode == "inference" else bench_train)(args, config)


if __name__ == "__main__":
    main()
