"""GPU figures in one command, for a machine with one CUDA GPU (issues 11 and 15):

1. ``street``: the vid2vid training step of the street preset at 512×256 and 1024×512, all three generator
   scales active, one sequence of L + frames_per_step frames per step, G + D_I + D_V forward and backward:
   fp32 vs bf16 autocast (the training loop's ``bf16``), with and without channels-last. Printed: step time,
   sequences/s and generated frames/s, peak GPU memory, counted FLOPs (``torch.utils.flop_counter``: convs
   and matmuls, forward and backward) and MFU against the card's dense bf16 peak.
2. ``official``: NVIDIA's label2city_2048 generator (415,075,371 parameters) at 512×256: bf16 inference
   s/frame (and ``torch.compile``'s, compile time apart) and one training step.
3. ``nccl``: the distributed path on this GPU: an NCCL process group (world size 1 — one GPU here) with the
   DDP-wrapped G and D, step time against the unwrapped step, and an all-reduce of 256 MB.
4. ``preprocess``: the learned preprocessing backends on the GPU at 512×256 (DeepLabV3, Mask R-CNN, RAFT,
   FlowNet2), frames/s.

Learned networks (VGG19 for the perceptual loss, the preprocessing backends) run on random stand-in weights
written here, since no hub is reachable: their *speed* is real, their outputs are meaningless and are not
reported. Needs torch with CUDA; no Ray (the Ray Train path is the same trainer and loop, see train.py).

Run: python benchmarks/gpu.py [--only street,official,nccl,preprocess] [--steps 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from model import build_config, make_parser, random_batch  # noqa: E402  (benchmarks/model.py)
from preprocess import rate, standin, street_frames  # noqa: E402  (benchmarks/preprocess.py)

from models.vid2vid.config import ModelConfig, load_model_config  # noqa: E402
from models.vid2vid.generator import Vid2VidGenerator  # noqa: E402
from models.vid2vid.layers import count_parameters  # noqa: E402
from models.vid2vid.losses import VGGLoss  # noqa: E402
from models.vid2vid.trainer import Vid2VidTrainer  # noqa: E402

#: dense (no sparsity) bf16 tensor-core peaks, FLOP/s, from NVIDIA's data sheets (SXM parts)
BF16_PEAK = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "L4": 121e12}


def card_peak() -> tuple[str, float | None]:
    name = torch.cuda.get_device_name()
    return name, next((peak for key, peak in BF16_PEAK.items() if key in name), None)


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f} GiB"


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device) for key, value in batch.items()}


def timed(fn: Callable[[], object], steps: int, warmup: int = 2) -> float:
    """Median seconds of ``fn`` over ``steps`` runs after ``warmup``, the GPU synchronised around each."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def counted_flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def street_config(width: int, height: int) -> ModelConfig:
    """The street preset at another size; one training sequence = L given frames + frames_per_step generated."""
    base = load_model_config("street")
    seq = base.generator.n_prev + base.train.frames_per_step
    return load_model_config("street", input={"width": width, "height": height},
                             train={"initial_seq_len": seq, "max_seq_len": seq, "batch_size": 1})


def stand_in_vgg(folder: Path) -> VGGLoss:
    import torchvision

    standin("vgg19", torchvision.models.vgg19(weights=None), folder)
    return VGGLoss(folder)


def trainer_at_full_depth(config: ModelConfig, vgg: VGGLoss | None, channels_last: bool,
                          compiled: bool = False) -> Vid2VidTrainer:
    """``compiled``: torch.compile in place (``Module.compile``) of the generator and of every PatchGAN,
    the graphs that launch most of a step's ~19k kernels (see the profile section)."""
    trainer = Vid2VidTrainer(config, device="cuda", vgg_loss=vgg)
    trainer.set_epoch(config.train.epochs_per_scale * (config.generator.n_scales - 1))  # every scale active
    if channels_last:
        trainer.G.to(memory_format=torch.channels_last)
        trainer.D.to(memory_format=torch.channels_last)
    if compiled:
        from models.vid2vid.discriminators import NLayerDiscriminator

        trainer.G.generator.compile()
        for module in trainer.D.modules():
            if isinstance(module, NLayerDiscriminator):
                module.compile()
    return trainer


def bench_street(steps: int, folder: Path) -> None:
    name, peak = card_peak()
    vgg = stand_in_vgg(folder).cuda()
    print(f"[street] street preset training step on {name} (bf16 dense peak "
          f"{peak / 1e12 if peak else float('nan'):.0f} TFLOP/s); VGG19 on stand-in weights (speed only)")
    for width, height in ((512, 256), (1024, 512)):
        config = street_config(width, height)
        frames = config.train.max_seq_len
        generated = frames - config.generator.n_prev
        batch = to_device(random_batch(config, 1, frames), torch.device("cuda"))
        for precision, channels_last in (("fp32", False), ("bf16", False), ("bf16", True)):
            trainer = trainer_at_full_depth(config, vgg, channels_last)
            autocast = torch.autocast("cuda", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

            def step() -> None:
                with autocast:
                    trainer.train_step(batch)

            torch.cuda.reset_peak_memory_stats()
            try:
                seconds = timed(step, steps)
            except torch.OutOfMemoryError:
                print(f"  {width}x{height} {precision} channels_last={channels_last}: out of memory")
                del trainer
                torch.cuda.empty_cache()
                continue
            memory = torch.cuda.max_memory_allocated()
            flops = counted_flops(step)
            mfu = f"{100 * flops / seconds / peak:.1f}%" if peak else "n/a"
            print(f"  {width}x{height} {precision:4s} channels_last={channels_last!s:5s} G={count_parameters(trainer.G):,} "
                  f"step {seconds * 1000:.0f} ms | {1 / seconds:.2f} sequences/s ({frames} frames) = "
                  f"{generated / seconds:.1f} generated frames/s | peak {gib(memory)} | "
                  f"{flops / 1e12:.2f} TFLOP/step -> {flops / seconds / 1e12:.0f} TFLOP/s, MFU {mfu}", flush=True)
            del trainer
            torch.cuda.empty_cache()


def official_config() -> ModelConfig:
    return build_config(make_parser().parse_args(["--official-street", "--size", "512x256"]))


def bench_official(steps: int) -> None:
    config = official_config()
    L = config.generator.n_prev
    batch = to_device(random_batch(config, 1, L + 1), torch.device("cuda"))
    from models.vid2vid.batch import encode_source, frame_background_mask

    gen = Vid2VidGenerator(config).cuda().train()  # official test-time semantics: batch statistics
    source = encode_source(config, batch)
    bg = frame_background_mask(config, batch["semantic"][:, -1], batch["image"][:, -1])
    prev = batch["image"][:, :L]
    print(f"[official] NVIDIA label2city_2048 generator ({count_parameters(gen):,} parameters) at 512x256")
    for precision in ("fp32", "bf16"):
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

        def infer(g: torch.nn.Module = gen) -> None:
            with torch.inference_mode(), autocast:
                g(source, prev, bg)

        torch.cuda.reset_peak_memory_stats()
        seconds = timed(infer, steps * 4)
        print(f"  inference {precision}: {seconds * 1000:.1f} ms/frame = {1 / seconds:.1f} frames/s | "
              f"peak {gib(torch.cuda.max_memory_allocated())}", flush=True)
    try:
        compiled = torch.compile(gen)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16)
        start = time.perf_counter()
        with torch.inference_mode(), autocast:
            compiled(source, prev, bg)
        torch.cuda.synchronize()
        compile_seconds = time.perf_counter() - start

        def infer_compiled() -> None:
            with torch.inference_mode(), autocast:
                compiled(source, prev, bg)

        seconds = timed(infer_compiled, steps * 4)
        print(f"  inference bf16 + torch.compile: {seconds * 1000:.1f} ms/frame = {1 / seconds:.1f} frames/s "
              f"(compile {compile_seconds:.0f} s, not counted)", flush=True)
    except Exception as error:  # noqa: BLE001 - a benchmark line, not a crash
        print(f"  inference bf16 + torch.compile: failed ({type(error).__name__}: {str(error)[:200]})")
    del gen
    torch.cuda.empty_cache()
    seq = L + 2
    train_config = ModelConfig.model_validate(
        {**config.to_dict(), "train": {**config.train.model_dump(), "initial_seq_len": seq, "max_seq_len": seq,
                                       "frames_per_step": 2}})
    train_batch = to_device(random_batch(train_config, 1, seq), torch.device("cuda"))
    trainer = trainer_at_full_depth(train_config, None, channels_last=False)
    name, peak = card_peak()
    for precision in ("fp32", "bf16"):
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

        def step() -> None:
            with autocast:
                trainer.train_step(train_batch)

        torch.cuda.reset_peak_memory_stats()
        seconds = timed(step, steps)
        flops = counted_flops(step)
        mfu = f"{100 * flops / seconds / peak:.1f}%" if peak else "n/a"
        print(f"  training step {precision} (G + D_I + D_V, 2 generated frames): {seconds * 1000:.0f} ms | "
              f"{2 / seconds:.1f} generated frames/s | peak {gib(torch.cuda.max_memory_allocated())} | MFU {mfu}",
              flush=True)


def bench_compiled(steps: int, folder: Path) -> None:
    """The bf16 street step with the generator and the PatchGANs compiled (compile time apart)."""
    name, peak = card_peak()
    vgg = stand_in_vgg(folder).cuda()
    for width, height in ((512, 256), (1024, 512)):
        config = street_config(width, height)
        frames = config.train.max_seq_len
        batch = to_device(random_batch(config, 1, frames), torch.device("cuda"))
        trainer = trainer_at_full_depth(config, vgg, channels_last=False, compiled=True)

        def step() -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                trainer.train_step(batch)

        started = time.perf_counter()
        step()
        torch.cuda.synchronize()
        compile_seconds = time.perf_counter() - started
        torch.cuda.reset_peak_memory_stats()
        seconds = timed(step, steps)
        memory = torch.cuda.max_memory_allocated()
        flops = counted_flops(step)
        mfu = f"{100 * flops / seconds / peak:.1f}%" if peak else "n/a"
        print(f"[compiled] {width}x{height} bf16 + torch.compile (G, PatchGANs): step {seconds * 1000:.0f} ms | "
              f"{1 / seconds:.2f} sequences/s = {(frames - config.generator.n_prev) / seconds:.1f} generated frames/s | "
              f"peak {gib(memory)} | MFU {mfu} (first step with compilation {compile_seconds:.0f} s)", flush=True)
        del trainer
        torch.cuda.empty_cache()


def profile_street(steps: int, folder: Path, width: int = 512, height: int = 256) -> None:
    """Where a bf16 street step's time goes: GPU-busy share of the wall time, top kernels, CPU-side ops."""
    from torch.profiler import ProfilerActivity, profile

    config = street_config(width, height)
    batch = to_device(random_batch(config, 1, config.train.max_seq_len), torch.device("cuda"))
    trainer = trainer_at_full_depth(config, stand_in_vgg(folder).cuda(), channels_last=False)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            trainer.train_step(batch)

    timed(step, 1)
    torch.cuda.synchronize()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    wall = (time.perf_counter() - start) / steps
    events = prof.key_averages()
    gpu_total = sum(e.self_device_time_total for e in events) / 1e6 / steps
    kernels = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA) / steps
    print(f"[profile] street {width}x{height} bf16 step: wall {wall * 1000:.0f} ms (profiled), GPU busy "
          f"{gpu_total * 1000:.0f} ms ({100 * gpu_total / wall:.0f}%), {kernels:.0f} GPU kernels per step")
    print(events.table(sort_by="self_device_time_total", row_limit=14, max_name_column_width=60))
    print(events.table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=60))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_nccl(steps: int) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    dist.init_process_group("nccl", rank=0, world_size=1, device_id=torch.device("cuda", 0))
    try:
        print(f"[nccl] process group: backend {dist.get_backend()}, NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}, "
              f"world size {dist.get_world_size()} (one GPU on this machine)")
        config = street_config(512, 256)
        config = ModelConfig.model_validate({**config.to_dict(), "loss": {**config.loss.model_dump(), "use_vgg": False}})
        batch = to_device(random_batch(config, 1, config.train.max_seq_len), torch.device("cuda"))
        autocast = torch.autocast("cuda", dtype=torch.bfloat16)
        results = {}
        for wrapped in (False, True):
            trainer = trainer_at_full_depth(config, None, channels_last=False)
            if wrapped:
                trainer.G = DistributedDataParallel(trainer.G, device_ids=[0], find_unused_parameters=True)
                trainer.D = DistributedDataParallel(trainer.D, device_ids=[0], find_unused_parameters=True)

            def step() -> None:
                with autocast:
                    trainer.train_step(batch)

            results[wrapped] = timed(step, steps)
            del trainer
            torch.cuda.empty_cache()
        print(f"  street 512x256 bf16 step (no VGG): plain {results[False] * 1000:.0f} ms, DDP over NCCL "
              f"{results[True] * 1000:.0f} ms ({100 * (results[True] / results[False] - 1):+.1f}%)")
        tensor = torch.ones(64 * 2**20, device="cuda")  # 256 MB of fp32

        def reduce() -> None:
            dist.all_reduce(tensor)

        seconds = timed(reduce, 10)
        print(f"  all_reduce 256 MB: {seconds * 1000:.2f} ms (world size 1: a local copy, not link bandwidth)")
    finally:
        dist.destroy_process_group()


def bench_preprocess(folder: Path) -> None:
    from torchvision.models.detection import maskrcnn_resnet50_fpn
    from torchvision.models.optical_flow import raft_large
    from torchvision.models.segmentation import deeplabv3_resnet50

    from models.preprocess.flow_nets import FlowNet2Flow, RAFTFlow
    from models.preprocess.flownet2 import FlowNet2
    from models.preprocess.instance import TorchvisionMaskRCNN
    from models.preprocess.semantic import TorchvisionDeepLab

    frames = street_frames(33)
    print(f"[preprocess] learned backends on {torch.cuda.get_device_name()} at 512x256, batches of 8 "
          "[stand-in weights: speed only]")
    standin("deeplabv3_resnet50", deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21,
                                                     aux_loss=True), folder)
    standin("maskrcnn_resnet50_fpn", maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91), folder)
    standin("raft_large", raft_large(weights=None), folder)
    standin("flownet2", FlowNet2(), folder)
    backends = (("semantic", "torchvision deeplabv3_resnet50", lambda: TorchvisionDeepLab(weights_dir=folder, device="cuda"), False),
                ("instance", "torchvision maskrcnn_resnet50_fpn", lambda: TorchvisionMaskRCNN(weights_dir=folder, device="cuda"), False),
                ("flow", "raft_large, 12 iterations", lambda: RAFTFlow(weights_dir=folder, device="cuda"), True),
                ("flow", "flownet2 (plain torch)", lambda: FlowNet2Flow(weights_dir=folder, device="cuda"), True))
    for stage, backend, make, pairs in backends:
        fps = rate(make(), frames, pairs=pairs, batch_size=8, warmup=8)
        print(f"  {stage:9s} {backend:40s} {fps:8.1f} frames/s", flush=True)
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="street,official,nccl,preprocess")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA GPU; CPU figures: benchmarks/train.py and model.py")
    torch.backends.cudnn.benchmark = True
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
          f"{torch.cuda.get_device_name()}")
    sections = args.only.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        for name in sections:
            started = time.perf_counter()
            try:
                if name == "street":
                    bench_street(args.steps, Path(tmp))
                elif name == "official":
                    bench_official(args.steps)
                elif name == "compiled":
                    bench_compiled(args.steps, Path(tmp))
                elif name == "profile":
                    profile_street(args.steps, Path(tmp))
                elif name == "nccl":
                    bench_nccl(args.steps)
                elif name == "preprocess":
                    bench_preprocess(Path(tmp))
                else:
                    raise SystemExit(f"unknown section {name!r}")
            except Exception as error:  # noqa: BLE001 - one section's failure must not hide the others' figures
                import traceback

                traceback.print_exc()
                print(f"[{name}] failed: {type(error).__name__}: {error}")
            print(f"[{name}] took {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
