"""How many training steps the demo needs: held-out PSNR and warp error against steps, for the demo's
vid2vid preset and its frame-by-frame twin, on the demo's own synthetic street (the clips `make demo`
writes: seed 0, 8 clips of 24 frames at 128×64, the last 2 held out).

The demo trains on 2 Ray workers with batch 1 each; here one process trains with batch 2 on the same kind of
random 6-frame windows, so a step here is a demo step. Evaluation as the demo's: frame 0 real, frames 1..23
synthesized recursively and scored (PSNR against the real frames, warp error with the exact flow).
Runs on CPU, or on a GPU to see far past the demo's budget quickly.

Training runs in the demo's precision (bf16 autocast + channels-last where the CPU has native bf16;
``--fp32`` for the exact mode). ``--seeds 0,1,2`` repeats every preset per seed and ends with mean ± sd per
preset at each scored step (issue 23's goal: vid2vid over the baseline on every seed, by >= 1 dB on the mean).

``--sheet PNG`` writes a contact sheet of the last scored step: frames 1, 8, 16 and 23 of the first held-out clip,
the real frames on top, then one row per preset and seed (look at it before quoting a number).

Run: python benchmarks/demo_curve.py [--steps 40,80,160,320,640] [--seeds 0,1,2] [--device cuda] [--sheet PNG]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.metrics.fidelity import psnr_per_frame  # noqa: E402
from models.metrics.report import FIRST_FRAME, scored  # noqa: E402
from models.metrics.warp_error import warping_error  # noqa: E402
from models.synthesis import synthesize_frames  # noqa: E402
from models.training.precision import autocast, prepare_modules, training_precision  # noqa: E402
from models.vid2vid.config import load_model_config  # noqa: E402
from models.vid2vid.trainer import Vid2VidTrainer, unwrap  # noqa: E402
from storage.synthetic import StreetScene, clip_seed, synthetic_splits  # noqa: E402

CLIPS, FRAMES, WIDTH, HEIGHT = 8, 24, 128, 64  # flows/demo.py's DEMO_CLIPS, DEMO_FRAMES, DEMO_SIZE
SHEET_FRAMES = (1, 8, 16, 23)  # the demo's contact-sheet frames
LABEL_WIDTH = 170


def demo_clips() -> tuple[list[list[dict]], list[list[dict]]]:
    """(training clips, held-out clips): per clip its frames' rgb, semantic, instance, flow and occlusion."""
    splits = synthetic_splits(CLIPS, 0.25)
    clips = [list(StreetScene(WIDTH, HEIGHT, FRAMES, clip_seed(0, k)).frames()) for k in range(CLIPS)]
    return ([c for c, s in zip(clips, splits) if s == "train"], [c for c, s in zip(clips, splits) if s == "val"])


def window_batch(clips: list[list[dict]], length: int, batch: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    rows = []
    for _ in range(batch):
        clip = clips[rng.integers(len(clips))]
        start = int(rng.integers(len(clip) - length + 1))
        rows.append(clip[start:start + length])
    stack = lambda key, dtype: np.stack([np.stack([f[key] for f in r]) for r in rows]).astype(dtype)  # noqa: E731
    image = torch.from_numpy(stack("rgb", np.float32)).permute(0, 1, 4, 2, 3) / 127.5 - 1
    return {"image": image,
            "semantic": torch.from_numpy(stack("semantic", np.int64)),
            "instance": torch.from_numpy(stack("instance", np.int64)),
            "flow": torch.from_numpy(np.stack([np.stack([f["flow"] for f in r[:-1]]) for r in rows])),
            "occlusion": torch.from_numpy(np.stack([np.stack([f["occlusion"] for f in r[:-1]]) for r in rows])
                                          .astype(np.float32))[:, :, None]}


def held_out_scores(trainer: Vid2VidTrainer, clips: list[list[dict]]) -> tuple[float, float, np.ndarray]:
    """(mean PSNR dB, mean warp error, the first clip's synthesized frames) of the held-out clips, scored as the
    demo's evaluation scores them."""
    generator = unwrap(trainer.G).generator.eval()
    psnrs, warps, first = [], [], None
    for clip in clips:
        fake = np.stack(list(synthesize_frames(generator, clip, first_frame=FIRST_FRAME)))
        first = fake if first is None else first
        real = np.stack([f["rgb"] for f in clip])
        psnrs.append(float(psnr_per_frame(scored(fake), scored(real)).mean()))
        flows = np.stack([f["flow"] for f in clip[:-1]]).transpose(0, 2, 3, 1)
        valid = np.stack([f["occlusion"] for f in clip[:-1]]) == 0
        warps.append(warping_error(scored(fake), scored(flows), scored(valid)).clip)
    generator.train()
    return float(np.mean(psnrs)), float(np.mean(warps)), first


def sheet_row(label: str, frames: np.ndarray) -> np.ndarray:
    """One labelled row of the contact sheet: SHEET_FRAMES of ``frames`` (T, H, W, 3 uint8 RGB) side by side."""
    tiles = [np.ascontiguousarray(frames[k]) for k in SHEET_FRAMES]
    margin = np.full((frames.shape[1], LABEL_WIDTH, 3), 255, np.uint8)
    for line, text in enumerate(label.split("\n")):
        cv2.putText(margin, text, (4, 16 + 16 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([margin, *tiles], axis=1)


def write_sheet(path: Path, rows: list[np.ndarray]) -> None:
    header = np.full((18, rows[0].shape[1], 3), 255, np.uint8)
    for k, index in enumerate(SHEET_FRAMES):
        cv2.putText(header, f"frame {index}", (LABEL_WIDTH + 4 + k * WIDTH, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    (0, 0, 0), 1, cv2.LINE_AA)
    sheet = np.concatenate([header, *rows], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write the contact sheet {path}")
    print(f"contact sheet: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="40,80,160,320", help="steps at which the held-out clips are scored")
    parser.add_argument("--configs", default="demo_street,demo_street_frame")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=2, help="the demo's 2 workers x batch 1")
    parser.add_argument("--seeds", default="0", help="training seeds, each preset trained once per seed")
    parser.add_argument("--fp32", action="store_true", help="exact float32 instead of the demo's bf16")
    parser.add_argument("--sheet", type=Path, help="write a contact sheet of the last scored step to this PNG")
    args = parser.parse_args()
    checkpoints = sorted(int(s) for s in args.steps.split(","))
    train, held_out = demo_clips()
    device = torch.device(args.device)
    precision = training_precision(device, bf16=not args.fp32)
    print(f"demo data: {len(train)} training and {len(held_out)} held-out clips, {FRAMES} frames at {WIDTH}x{HEIGHT}; "
          f"device {args.device}, {precision}")
    scores: dict[tuple[str, int], list[tuple[float, float]]] = {}
    rows = [sheet_row("real", np.stack([f["rgb"] for f in held_out[0]]).astype(np.uint8))]
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in args.configs.split(","):
            preset = load_model_config(name)
            config = preset.model_validate({**preset.to_dict(), "train": {**preset.to_dict()["train"], "seed": seed}})
            trainer = Vid2VidTrainer(config, device=device)
            prepare_modules(device, precision, trainer.G, trainer.D)
            rng = np.random.default_rng(config.train.seed)
            length = config.train.max_seq_len
            started, step = time.perf_counter(), 0
            for target in checkpoints:
                while step < target:
                    with autocast(device, precision):
                        trainer.train_step(window_batch(train, length, args.batch, rng))
                    step += 1
                seconds = time.perf_counter() - started
                psnr, warp, fake = held_out_scores(trainer, held_out)
                scores.setdefault((name, target), []).append((psnr, warp))
                if target == checkpoints[-1]:
                    rows.append(sheet_row(f"{name}\nseed {seed}, {step} steps\n{psnr:.2f} dB", fake))
                print(f"{name:18s} seed {seed} step {step:5d}: held-out PSNR {psnr:6.2f} dB, warp error {warp:.5f} "
                      f"({seconds:.0f} s of training on {args.device})", flush=True)
    if args.sheet:
        write_sheet(args.sheet, rows)
    for (name, target), values in sorted(scores.items()):
        psnrs, warps = np.array([v[0] for v in values]), np.array([v[1] for v in values])
        print(f"{name:18s} step {target:5d}: PSNR {psnrs.mean():.2f} ± {psnrs.std(ddof=1) if len(psnrs) > 1 else 0:.2f} "
              f"dB, warp error {warps.mean():.5f} over {len(values)} seed(s)")


if __name__ == "__main__":
    main()
