"""Cityscapes *label ids* (the 35-class space NVIDIA's released street models read) and their import door.

Two label spaces live in semantic/instance shards, recorded in each shard's footer (``label_space``):

- ``cityscapes_train_ids``: the 19 train ids (0..18, 255 = ignore) every computed backend writes; instance
  ids ``train_id*1000+k``, stuff 0 (``labels.py``).
- ``cityscapes_label_ids``: the label ids 0..33 of gtFine ``*_labelIds.png`` (or of a Cityscapes network's
  train ids mapped back, ``semantic=mmseg:label_space=cityscapes_label_ids``: how NVIDIA made their training
  maps, though not with this network); instance maps as in gtFine
  ``*_instanceIds.png``: stuff and instance-less groups keep their label id (< 1000), instances are
  ``label_id*1000+k``. The official street models one-hot 35 channels (ids 0..33, plus the license plate's
  -1 which no PNG holds), read foreground label id 26 (car) and take instance edges from these raw ids,
  so stuff-stuff borders are edges too: only imported (or equally made) maps give their encoding.

The table (names, ids, train ids, which have instances) is cityscapesscripts' (``helpers.labels``).
Import: ``--backend semantic=cityscapes:import_dir=DIR`` (and ``instance=cityscapes:import_dir=DIR``) finds a
clip's per-frame files by Cityscapes name, ``DIR/**/<clip>_<frame:06d>_*labelIds.png`` (gtFine's own layout,
``<city>_<seq>`` being the clip id ingest gives a leftImg8bit_sequence), or in name order in ``DIR/<clip>/``;
``suffix=...`` names other files (gtFine annotates one frame of each 30-frame sequence, so video needs
per-frame label-id maps from elsewhere, named the Cityscapes way).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CITYSCAPES_LABELS
from PIL import Image

from models.preprocess.base import Frame, Output, PreprocessInputError, check_frames

TRAIN_IDS = "cityscapes_train_ids"
LABEL_IDS = "cityscapes_label_ids"
LABEL_SPACES = (TRAIN_IDS, LABEL_IDS)

#: label id -> name, for the ids a label PNG can hold (0..33); the license plate (-1) is never drawn
LABEL_ID_NAMES: dict[int, str] = {lab.id: lab.name for lab in _CITYSCAPES_LABELS if lab.id >= 0}
MAX_LABEL_ID = max(LABEL_ID_NAMES)  # 33
#: the official models' one-hot width (label_nc 35): every id of the table, -1 included
NUM_LABEL_ID_CLASSES = len(_CITYSCAPES_LABELS)  # 35
#: label ids whose objects carry instance ids (person .. bicycle, caravan and trailer included)
THING_LABEL_IDS: tuple[int, ...] = tuple(lab.id for lab in _CITYSCAPES_LABELS if lab.hasInstances)
CAR_LABEL_ID = next(lab.id for lab in _CITYSCAPES_LABELS if lab.name == "car")  # 26: the released models' fg
#: train id -> label id (each of the 19 train ids is exactly one label id)
TRAIN_TO_LABEL_ID: dict[int, int] = {lab.trainId: lab.id for lab in _CITYSCAPES_LABELS if 0 <= lab.trainId < 255}

LABEL_SUFFIX = "labelIds.png"
INSTANCE_SUFFIX = "instanceIds.png"
_NUMBERED = r"^{clip}_(\d{{6}})_.*{suffix}$"
_LEFT_IMG = re.compile(r"^(?P<seq>.+)_(?P<frame>\d{6})_leftImg8bit\.(?:png|jpg)$")


def train_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """A train-id map (0..18, 255 ignore) as label ids: each train id is exactly one label id; ignore becomes
    0 (unlabeled). The classes Cityscapes does not train on (parking, rail track, guard rail, ...) never appear."""
    table = np.zeros(256, np.uint8)
    for train_id, label_id in TRAIN_TO_LABEL_ID.items():
        table[train_id] = label_id
    return table[train_ids]


def validate_label_ids(label: np.ndarray, what: str = "label map") -> np.ndarray:
    """Cityscapes label ids 0..33 (H×W uint8); anything else stops the clip."""
    if label.dtype != np.uint8 or label.ndim != 2:
        raise PreprocessInputError(f"{what} must be H×W uint8 Cityscapes label ids, got {label.dtype} {label.shape}")
    unknown = [int(i) for i in np.unique(label) if int(i) > MAX_LABEL_ID]
    if unknown:
        raise PreprocessInputError(f"{what} holds ids {unknown[:10]} outside the Cityscapes label ids 0..{MAX_LABEL_ID} "
                                   f"(is it a train-id map? those need a 19-class model)")
    return label


def validate_label_id_instances(instance: np.ndarray, what: str = "instance map") -> np.ndarray:
    """gtFine instanceIds (H×W uint16): a label id 0..33 (< 1000), or label_id*1000+k with a thing label id."""
    if instance.dtype != np.uint16 or instance.ndim != 2:
        raise PreprocessInputError(f"{what} must be H×W uint16 Cityscapes instance ids, got {instance.dtype} "
                                   f"{instance.shape}")
    ids = np.unique(instance)
    bad = [int(i) for i in ids if (i < 1000 and i > MAX_LABEL_ID) or (i >= 1000 and int(i) // 1000 not in THING_LABEL_IDS)]
    if bad:
        raise PreprocessInputError(f"{what} holds ids {bad[:10]}: expected Cityscapes label ids 0..{MAX_LABEL_ID} or "
                                   f"label_id*1000+k with a thing label id {THING_LABEL_IDS}")
    return instance


def default_suffix(stage: str) -> str:
    return LABEL_SUFFIX if stage == "semantic" else INSTANCE_SUFFIX


def import_candidates(import_dir: Path, clip_id: str, suffix: str) -> tuple[dict[int, Path], list[Path]]:
    """A clip's files under ``import_dir``: {Cityscapes frame number: path} from ``**/<clip>_<frame>_*<suffix>``,
    and, when there are none, the files of ``<import_dir>/<clip>/`` in name order."""
    pattern = re.compile(_NUMBERED.format(clip=re.escape(clip_id), suffix=re.escape(suffix)))
    numbered: dict[int, Path] = {}
    if import_dir.is_dir():
        for path in sorted(import_dir.rglob(f"{clip_id}_*{suffix}")):
            match = pattern.match(path.name)
            if not match or not path.is_file():
                continue
            number = int(match.group(1))
            if number in numbered:
                raise PreprocessInputError(f"clip {clip_id}: two files for frame {number:06d}: {numbered[number]} and "
                                           f"{path}; keep one (e.g. gtFine or gtCoarse) in {import_dir}")
            numbered[number] = path
    folder = import_dir / clip_id
    ordered = [] if numbered or not folder.is_dir() else \
        sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(suffix))
    return numbered, ordered


def source_frame_numbers(source: str | None, clip_id: str) -> list[int] | None:
    """The Cityscapes frame numbers of a clip ingested from a leftImg8bit_sequence folder (``source``), in
    frame order; None when the source is gone or not named the Cityscapes way."""
    folder = Path(source) if source else None
    if folder is None or not folder.is_dir():
        return None
    numbers = sorted(int(m.group("frame")) for p in folder.iterdir()
                     if (m := _LEFT_IMG.match(p.name)) and m.group("seq") == clip_id)
    return numbers or None


def read_id_png(path: Path, dtype: type) -> np.ndarray:
    """A single-channel id PNG (8 or 16 bit) as ``dtype``, exactly as stored."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
                raise PreprocessInputError(f"{path}: a {image.mode} image, not a single-channel id map")
            array = np.asarray(image)
    except (OSError, ValueError) as exc:
        raise PreprocessInputError(f"{path}: unreadable id map ({exc})") from None
    if array.ndim != 2:
        raise PreprocessInputError(f"{path}: not a single-channel id map (shape {array.shape})")
    if array.min(initial=0) < 0 or array.max(initial=0) > np.iinfo(dtype).max:
        raise PreprocessInputError(f"{path}: ids {int(array.min())}..{int(array.max())} do not fit {np.dtype(dtype).name}")
    return array.astype(dtype)


def fit_to_frame(ids: np.ndarray, shape: tuple[int, int], path: Path) -> np.ndarray:
    """An id map at the clip's frame size: as is, or resized by nearest neighbour (PIL's, as the official
    loader resizes its label maps) when only the scale differs; another aspect ratio is refused."""
    h, w = shape
    ih, iw = ids.shape
    if (ih, iw) == (h, w):
        return ids
    if ih * w != iw * h:
        raise PreprocessInputError(f"{path} is {iw}x{ih}, the clip's frames {w}x{h}: another aspect ratio (ingest "
                                   f"with --mode resize, or crop the maps the way the frames were cropped)")
    resized = Image.fromarray(ids.astype(np.int32) if ids.dtype == np.uint16 else ids).resize((w, h), Image.NEAREST)
    return np.asarray(resized).astype(ids.dtype)


class CityscapesImport:
    """semantic / instance importer: gtFine-style ``*_labelIds.png`` / ``*_instanceIds.png`` per frame."""

    name = "cityscapes"

    def __init__(self, import_dir: Path, clip_id: str, kind: str, suffix: str | None = None) -> None:
        if kind not in ("semantic", "instance"):
            raise ValueError(f"the cityscapes importer feeds the semantic or instance stage, not {kind!r}")
        self.import_dir, self.clip_id, self.kind = Path(import_dir), clip_id, kind
        self.suffix = suffix or default_suffix(kind)
        self.files: list[Path] = []
        self._next = 0

    def bind(self, n_frames: int, source: str | None) -> None:
        """Match one file to each of the clip's ``n_frames`` frames, by Cityscapes frame number when the
        clip's source says them, else in name order; a missing file is an error naming clip and file."""
        numbered, ordered = import_candidates(self.import_dir, self.clip_id, self.suffix)
        where = (f"{self.import_dir}/**/{self.clip_id}_<frame>_*{self.suffix} or "
                 f"{self.import_dir / self.clip_id}/*{self.suffix}")
        if not numbered and not ordered:
            raise PreprocessInputError(f"clip {self.clip_id}: no *{self.suffix} files (looked for {where})")
        numbers = source_frame_numbers(source, self.clip_id) if numbered else None
        if numbers is not None and len(numbers) == n_frames:
            missing = [n for n in numbers if n not in numbered]
            if missing:
                raise PreprocessInputError(
                    f"clip {self.clip_id}: no {self.suffix} file for frame {missing[0]:06d} (expected "
                    f"{self.import_dir}/**/{self.clip_id}_{missing[0]:06d}_*{self.suffix}; {len(missing)} of "
                    f"{n_frames} frames missing)")
            self.files = [numbered[n] for n in numbers]
        else:
            self.files = [numbered[n] for n in sorted(numbered)] if numbered else ordered
            if len(self.files) != n_frames:
                raise PreprocessInputError(f"clip {self.clip_id}: {len(self.files)} *{self.suffix} files for its "
                                           f"{n_frames} frames (in {where})")
        self._next = 0

    def __call__(self, frames: Sequence[Frame]) -> list[Output]:
        h, w = check_frames(frames)
        if not self.files:
            raise PreprocessInputError(f"clip {self.clip_id}: the cityscapes importer was not bound to its frames")
        outputs = []
        for _ in frames:
            if self._next >= len(self.files):
                raise PreprocessInputError(f"clip {self.clip_id}: only {len(self.files)} *{self.suffix} files")
            path = self.files[self._next]
            what = f"{path} (frame {self._next} of clip {self.clip_id})"
            if self.kind == "semantic":
                ids = validate_label_ids(fit_to_frame(read_id_png(path, np.uint8), (h, w), path), what)
                outputs.append({"payload": ids})
            else:
                ids = validate_label_id_instances(fit_to_frame(read_id_png(path, np.uint16), (h, w), path), what)
                outputs.append({"payload": ids, "empty": not bool((ids >= 1000).any())})
            self._next += 1
        return outputs
