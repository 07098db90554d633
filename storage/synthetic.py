"""A seeded procedural street: the embedded default dataset, with exact labels, instances and flow.

The camera looks sideways from a moving car, so every background surface moves horizontally by a known
amount per frame (parallax: the nearer the ground row, the faster), and cars and pedestrians move on top
with speeds of their own, occluding each other by depth. Because every pixel's motion is known, the
forward flow and the occlusion mask are exact, not estimated. Surfaces are textured and shaded so that
synthesizing them is a real task, not a colour lookup.

Instance ids follow the Cityscapes convention with train ids: ``train_id * 1000 + k`` for things, 0 for
stuff. Labels are Cityscapes train ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from storage.layout import DatasetLayout
from storage.manifest import ClipRecord
from storage.stages import write_stage

ROAD, SIDEWALK, BUILDING, POLE, VEGETATION, SKY, PERSON, CAR = 0, 1, 2, 5, 8, 10, 11, 13
EMPTY = 255
SYNTHETIC_CODE_VERSION = "synthetic-street/1"


def synthetic_splits(clips: int, val_fraction: float) -> list[str]:
    """The last clips are held out: both splits are non-empty whenever there are 2+ clips and a fraction."""
    n_val = min(clips - 1, max(1 if val_fraction > 0 else 0, round(clips * val_fraction))) if clips > 1 else 0
    return ["train"] * (clips - n_val) + ["val"] * n_val


def clip_seed(seed: int, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:4], "little")


def _noise(rng: np.random.Generator, height: int, width: int, scales: tuple[float, ...] = (2, 6, 18)) -> np.ndarray:
    """Fractal noise in [-1, 1]: sums of blurred white noise at several scales."""
    total = np.zeros((height, width), np.float32)
    for i, scale in enumerate(scales):
        field = rng.standard_normal((height, width)).astype(np.float32)
        field = cv2.GaussianBlur(field, (0, 0), sigmaX=scale, borderType=cv2.BORDER_REFLECT)
        field /= field.std() + 1e-6
        total += field / (i + 1)
    return np.clip(total / 2.0, -1, 1)


@dataclass
class _Layer:
    """A background surface in world coordinates, scrolled by ``speed[y]`` pixels per frame per row."""

    color: np.ndarray  # H×Ww×3 float32 in 0..255
    label: np.ndarray  # H×Ww uint8, EMPTY where the layer is transparent
    speed: np.ndarray  # H float32, pixels per frame (camera parallax)


@dataclass
class _Sprite:
    color: np.ndarray  # h×w×3 float32
    mask: np.ndarray  # h×w uint8 (1 inside)
    label: int
    instance: int
    x0: float  # left edge at t = 0, screen pixels
    top: int
    velocity: float  # screen pixels per frame (own motion + parallax)

    def left(self, t: int) -> float:
        return self.x0 + self.velocity * t


class StreetScene:
    """One clip's world. ``frames()`` renders it; the same seed always renders the same bytes."""

    def __init__(self, width: int, height: int, n_frames: int, seed: int) -> None:
        if width < 32 or height < 16:
            raise ValueError(f"synthetic frames must be at least 32x16, got {width}x{height}")
        self.width, self.height, self.n_frames = width, height, n_frames
        rng = np.random.default_rng(seed)
        self.rng = rng
        h = height
        self.horizon = int(0.42 * h)
        self.curb = int(0.58 * h)  # sidewalk rows above, road rows below
        self.camera_speed = float(rng.uniform(0.02, 0.04) * width)
        self.light = float(rng.uniform(0.8, 1.15))
        rows = np.arange(h, dtype=np.float32)
        self.ground_speed = np.clip((rows - self.horizon) / (h - self.horizon), 0, None) * self.camera_speed
        self.world_width = width + int(np.ceil(self.camera_speed * n_frames)) + 8
        self.layers = [self._sky(), self._buildings(), self._ground(), self._trees_and_poles()]
        self.sprites = self._people() + self._cars()
        self.sprites.sort(key=lambda s: s.top + s.mask.shape[0])  # farther (higher bottom edge) first

    # --- world construction -------------------------------------------------------------------------
    def _row_speed(self, row: float) -> np.ndarray:
        return np.full(self.height, self.ground_speed[min(int(row), self.height - 1)], np.float32)

    def _sky(self) -> _Layer:
        h, ww = self.height, self.world_width
        y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
        top, bottom = np.array([70, 120, 200], np.float32), np.array([185, 210, 235], np.float32)
        color = top + (bottom - top) * y[..., None]
        clouds = np.clip(_noise(self.rng, h, ww, (4, 10)) * 1.6, 0, 1)[..., None]
        color = np.broadcast_to(color, (h, ww, 3)) * (1 - clouds) + 245 * clouds
        label = np.full((h, ww), SKY, np.uint8)
        return _Layer(color.astype(np.float32), label, np.full(h, 0.05 * self.camera_speed, np.float32))

    def _buildings(self) -> _Layer:
        h, ww, rng = self.height, self.world_width, self.rng
        base = self.horizon + max(1, int(0.03 * h))
        color = np.zeros((h, ww, 3), np.float32)
        label = np.full((h, ww), EMPTY, np.uint8)
        grain = _noise(rng, h, ww, (1, 3))
        x = 0
        while x < ww:
            bw = int(rng.uniform(0.18, 0.45) * self.width)
            if rng.random() < 0.15:  # a gap between buildings
                x += max(2, bw // 3)
                continue
            top = int(rng.uniform(0.05, 0.3) * h)
            wall = rng.uniform(70, 200, 3).astype(np.float32)
            xs = slice(x, min(ww, x + bw))
            span = xs.stop - xs.start
            shade = np.linspace(1.1, 0.75, span, dtype=np.float32)[None, :, None]  # light from the left
            block = wall * shade * np.ones((base - top, 1, 1), np.float32)
            block += 18 * grain[top:base, xs, None]
            win_w, win_h = max(2, span // 7), max(2, (base - top) // 8)
            for wy in range(top + win_h, base - win_h, 2 * win_h):
                for wx in range(win_w, span - win_w, 2 * win_w):
                    glass = rng.uniform(30, 90) + 60 * (rng.random() < 0.2)
                    block[wy - top:wy - top + win_h, wx:wx + win_w] = glass + 10 * grain[wy:wy + win_h, x + wx:x + wx + win_w, None]
            color[top:base, xs] = block
            label[top:base, xs] = BUILDING
            x += bw
        return _Layer(color * self.light, label, self._row_speed(base))

    def _ground(self) -> _Layer:
        h, ww = self.height, self.world_width
        grain = _noise(self.rng, h, ww, (1, 2, 8))
        color = np.zeros((h, ww, 3), np.float32)
        label = np.full((h, ww), EMPTY, np.uint8)
        side = slice(self.horizon, self.curb)
        tiles = ((np.arange(ww)[None, :] // max(3, self.width // 24)) % 2) * 10.0
        color[side] = (np.array([150, 140, 135], np.float32) + 20 * grain[side, :, None] + tiles[..., None])
        label[side] = SIDEWALK
        road = slice(self.curb, h)
        color[road] = np.array([75, 75, 80], np.float32) + 22 * grain[road, :, None]
        label[road] = ROAD
        lane = self.curb + (h - self.curb) // 2
        dash = (np.arange(ww) // max(4, self.width // 10)) % 2 == 0
        color[lane:lane + max(1, h // 64), dash] = 225
        color[self.curb:self.curb + max(1, h // 48)] = 200  # kerb stone line
        return _Layer(color * self.light, label, self.ground_speed.copy())

    def _trees_and_poles(self) -> _Layer:
        h, ww, rng = self.height, self.world_width, self.rng
        base = self.horizon + max(2, int(0.08 * h))
        color = np.zeros((h, ww, 3), np.float32)
        label = np.full((h, ww), EMPTY, np.uint8)
        leaves = _noise(rng, h, ww, (1, 2, 4))
        x = int(rng.uniform(0, 0.3) * self.width)
        while x < ww - 4:
            if rng.random() < 0.6:  # tree: trunk + noisy crown
                radius = max(3, int(rng.uniform(0.06, 0.12) * self.width))
                cy, cx = base - int(rng.uniform(1.6, 2.4) * radius), x
                yy, xx = np.ogrid[:h, :ww]
                crown = ((yy - cy) / (0.8 * radius)) ** 2 + ((xx - cx) / radius) ** 2 < 1 + 0.35 * leaves
                trunk_w = max(1, radius // 5)
                label[cy:base, max(0, cx - trunk_w):cx + trunk_w] = VEGETATION
                color[cy:base, max(0, cx - trunk_w):cx + trunk_w] = (90, 60, 40)
                label[crown] = VEGETATION
                color[crown] = np.stack([40 + 25 * leaves, 110 + 45 * leaves, 35 + 20 * leaves], -1)[crown]
            else:  # pole with a lamp
                top = int(rng.uniform(0.1, 0.25) * h)
                width = max(1, self.width // 160)
                label[top:base, x:x + width] = POLE
                color[top:base, x:x + width] = (95, 95, 100)
            x += int(rng.uniform(0.25, 0.6) * self.width)
        return _Layer(color * self.light, label, self._row_speed(base))

    def _person_sprite(self, height_px: int) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        w = max(3, height_px // 3)
        color = np.zeros((height_px, w, 3), np.float32)
        mask = np.zeros((height_px, w), np.uint8)
        head = max(1, height_px // 7)
        cv2.ellipse(mask, (w // 2, head), (max(1, head // 1), head), 0, 0, 360, 1, -1)
        color[: 2 * head] = rng.uniform([150, 100, 70], [230, 180, 140])
        torso = slice(2 * head, int(0.6 * height_px))
        mask[torso, 0:w] = 1
        color[torso] = rng.uniform(30, 220, 3)
        legs = slice(int(0.6 * height_px), height_px)
        mask[legs, : max(1, w // 2 - 0)] = 1
        mask[legs, w - max(1, w // 2 - 0):] = 1
        color[legs] = rng.uniform(20, 90, 3)
        color *= np.linspace(1.1, 0.8, w, dtype=np.float32)[None, :, None]
        return color * self.light, mask

    def _car_sprite(self, height_px: int) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        w = max(6, int(height_px * rng.uniform(2.2, 2.8)))
        color = np.zeros((height_px, w, 3), np.float32)
        mask = np.zeros((height_px, w), np.uint8)
        body_top = height_px // 3
        paint = rng.uniform(20, 230, 3).astype(np.float32)
        mask[body_top:height_px - max(1, height_px // 6)] = 1
        cabin = (slice(0, body_top + 1), slice(w // 5, 4 * w // 5))
        mask[cabin] = 1
        vertical = np.linspace(1.25, 0.7, height_px, dtype=np.float32)[:, None, None]
        color[:] = paint * vertical
        color[1:body_top, w // 5 + 1: 4 * w // 5 - 1] = (60, 80, 100)  # windows
        wheel_r = max(1, height_px // 5)
        for cx in (w // 5, 4 * w // 5):
            cv2.circle(mask, (cx, height_px - wheel_r - 1), wheel_r, 1, -1)
            cv2.circle(color, (cx, height_px - wheel_r - 1), wheel_r, (20, 20, 20), -1)
        return color * self.light, mask

    def _people(self) -> list[_Sprite]:
        rng, sprites = self.rng, []
        for k in range(int(rng.integers(2, 5))):
            bottom = int(rng.uniform(self.horizon + 0.1 * (self.curb - self.horizon), self.curb))
            height_px = max(6, int((0.12 + 0.25 * (bottom - self.horizon) / self.height) * self.height))
            color, mask = self._person_sprite(height_px)
            walk = rng.uniform(0.3, 1.0) * rng.choice([-1, 1]) * self.width / 128
            sprites.append(_Sprite(color, mask, PERSON, PERSON * 1000 + k + 1, float(rng.uniform(-0.1, 1.0) * self.width),
                                   bottom - height_px, walk - float(self.ground_speed[bottom])))
        return sprites

    def _cars(self) -> list[_Sprite]:
        rng, sprites = self.rng, []
        lanes = [self.curb + (self.height - self.curb) * f for f in (0.45, 0.9)]
        for k in range(int(rng.integers(2, 4))):
            bottom = int(lanes[k % 2] + rng.uniform(-1, 1))
            bottom = min(bottom, self.height - 1)
            height_px = max(5, int((0.10 + 0.3 * (bottom - self.horizon) / self.height) * self.height))
            color, mask = self._car_sprite(height_px)
            drive = rng.uniform(0.5, 1.6) * (1 if k % 2 else -1) * self.camera_speed
            start = float(rng.uniform(-0.3, 1.1) * self.width)
            sprites.append(_Sprite(color, mask, CAR, CAR * 1000 + k + 1, start, bottom - height_px + 1,
                                   drive - float(self.ground_speed[bottom])))
        return sprites

    # --- rendering ----------------------------------------------------------------------------------
    def _render(self, t: int) -> dict[str, np.ndarray]:
        h, w = self.height, self.width
        xs = np.arange(w, dtype=np.float32)[None, :]
        ys = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
        image = np.zeros((h, w, 3), np.float32)
        label = np.full((h, w), EMPTY, np.uint8)
        instance = np.zeros((h, w), np.uint16)
        surface = np.full((h, w), -1, np.int32)  # which layer/sprite each pixel shows: for occlusion
        dx = np.zeros((h, w), np.float32)
        for index, layer in enumerate(self.layers):
            map_x = (xs + 2 + layer.speed[:, None] * t).astype(np.float32)
            color = cv2.remap(layer.color, map_x, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            lab = cv2.remap(layer.label, map_x, ys, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=EMPTY)
            on = lab != EMPTY
            image[on], label[on], surface[on] = color[on], lab[on], index
            dx[on] = -np.broadcast_to(layer.speed[:, None], (h, w))[on]
        for index, sprite in enumerate(self.sprites):
            shift = np.float32([[1, 0, sprite.left(t)], [0, 1, sprite.top]])
            mask = cv2.warpAffine(sprite.mask, shift, (w, h), flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
            if not mask.any():
                continue
            color = cv2.warpAffine(sprite.color, shift, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            image[mask], label[mask], instance[mask] = color[mask], sprite.label, sprite.instance
            surface[mask], dx[mask] = len(self.layers) + index, sprite.velocity
        return {"image": image, "label": label, "instance": instance, "surface": surface, "dx": dx}

    def frames(self) -> Iterator[dict[str, np.ndarray | bool]]:
        """Per frame: rgb, semantic, instance, forward flow to the next frame, occlusion (1 = no valid flow)."""
        h, w = self.height, self.width
        current = self._render(0)
        for t in range(self.n_frames):
            following = self._render(t + 1) if t + 1 < self.n_frames else None
            flow = np.zeros((2, h, w), np.float32)
            occlusion = np.ones((h, w), np.uint8)
            if following is not None:
                flow[0] = current["dx"]
                target_x = np.rint(np.arange(w, dtype=np.float32)[None, :] + current["dx"]).astype(np.int64)
                inside = (target_x >= 0) & (target_x < w)
                rows = np.repeat(np.arange(h)[:, None], w, axis=1)
                same = np.zeros((h, w), bool)
                same[inside] = following["surface"][rows[inside], target_x[inside]] == current["surface"][inside]
                occlusion = (~same).astype(np.uint8)
            rgb = np.clip(current["image"], 0, 255).astype(np.uint8)
            yield {"rgb": rgb, "semantic": current["label"].copy(), "instance": current["instance"].copy(),
                   "flow": flow, "occlusion": occlusion, "has_flow": following is not None}
            if following is not None:
                current = following


def write_synthetic_clip(layout: DatasetLayout, clip_id: str, seed: int, width: int, height: int, n_frames: int,
                         split: str = "train") -> ClipRecord:
    """Render one clip into its rgb, semantic, instance and (exact) flow shards; unchanged clips are skipped."""
    config = {"seed": seed, "width": width, "height": height, "n_frames": n_frames}
    scene_frames = lambda: StreetScene(width, height, n_frames, seed).frames()  # noqa: E731 - re-rendered per stage
    columns = {
        "rgb": lambda f: {"payload": f["rgb"]},
        "semantic": lambda f: {"payload": f["semantic"]},
        "instance": lambda f: {"payload": f["instance"]},
        "flow": lambda f: {"payload": f["flow"], "occlusion": f["occlusion"], "has_flow": f["has_flow"]},
    }
    for stage, pick in columns.items():
        write_stage(layout, stage, clip_id, backend="synthetic", config=config, code_version=SYNTHETIC_CODE_VERSION,
                    frames=lambda pick=pick: (pick(f) for f in scene_frames()), extra={"fps": 17.0})
    return ClipRecord(clip_id=clip_id, source=f"synthetic:street?seed={seed}", split=split,
                      n_frames=n_frames, fps=17.0, height=height, width=width,
                      source_sha256=hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest())
