"""Model cards of the shipped reference models, and the folder that holds them.

``reference_models/<name>/`` holds ``model.pt`` (generator and discriminators in fp16), ``card.json`` (this
schema: what was trained, how, on what, for how long, and what it scores on held-out data) and ``card.md``
(the same, rendered). The card's sha256 is the file's registered checksum in the weights registry
(models/weights.py registers every card found here at import), so a shipped model is verified like any
other weight. Light on purpose (json + pydantic): the weights registry imports it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

REFERENCE_DIR_ENV = "VID2VID_REFERENCE_DIR"
DEFAULT_REFERENCE_DIR = Path(__file__).resolve().parents[2] / "reference_models"
CARD_FORMAT = "vid2vid-reference-card/1"
MODEL_FILE = "model.pt"
CARD_FILE = "card.json"
CARD_MARKDOWN = "card.md"
MAX_MODEL_BYTES = 25 * 1024 * 1024  # per shipped model file
#: the names --init-from / --runs / --checkpoint accept for a shipped model: reference:<name>
PREFIX = "reference:"


def reference_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """argument, then ``$VID2VID_REFERENCE_DIR``, then the repository's reference_models/."""
    return Path(override or os.environ.get(REFERENCE_DIR_ENV) or DEFAULT_REFERENCE_DIR)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Segment(_Strict):
    """One invocation of the training command (a resumed model has several)."""

    run_dir: str
    start_step: int
    end_step: int
    seconds: float = Field(description="the train flow's wall time of this segment (Ray start-up included)")
    resumed_from: str | None = None
    estimated: bool = Field(default=False, description="a segment that never finished (killed): the sum of its "
                                                       "steps' times up to the checkpoint resumed from")


class WallTime(_Strict):
    training_seconds: float = Field(description="sum over every segment: the total across resumptions")
    segments: list[Segment]
    last_command_seconds: float = Field(description="the last invocation end to end: data, training, packing, scoring")


class Machine(_Strict):
    platform: str
    python: str
    torch: str
    cpu: str
    cpu_count: int
    gpu: str
    niceness: int


class DataRecord(_Strict):
    kind: str
    dataset: str
    recipe: dict[str, Any]
    train_fingerprint: str = Field(description="manifest + every training shard's fingerprint (the train flow's)")
    heldout_fingerprint: str = Field(description="the held-out clips' rgb shards (the evaluation's `data` column)")
    heldout_clips: list[str]
    source_sha256: str | None = Field(default=None, description="the source video's sha256, for real data")
    regenerate: str = Field(description="the command that rebuilds exactly this data")


class HeldOut(_Strict):
    metrics: dict[str, float | str]
    references: dict[str, float | str] = Field(description="the same metrics on the real held-out frames")
    protocol: str
    clips: int
    frames_scored: int


class ModelCard(_Strict):
    format: Literal["vid2vid-reference-card/1"] = CARD_FORMAT
    name: str
    preset: str
    method: str = Field(description="vid2vid, or the frame-by-frame baseline")
    twin: str
    file: str = MODEL_FILE
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int
    dtype: Literal["float16"] = "float16"
    parts: list[str]
    command: str = Field(description="the command that reproduces this model from nothing")
    config: dict[str, Any] = Field(description="the ModelConfig the model was trained with, as in its file")
    steps: int
    budget_steps: int = Field(description="the recipe's budget (configs/reference/<name>.yaml)")
    budget_note: str = Field(description="whether the steps are the recipe's budget or a shorter one, and why")
    wall_time: WallTime
    machine: Machine
    data: DataRecord
    code_commit: str
    code_dirty: bool
    heldout: HeldOut
    trained_at: str


@dataclasses.dataclass(frozen=True)
class ShippedModel:
    """One folder under reference_models/: its card, or why it cannot be used."""

    name: str
    folder: Path
    card: ModelCard | None
    problem: str | None = None

    @property
    def model_path(self) -> Path:
        return self.folder / (self.card.file if self.card else MODEL_FILE)


def read_card(folder: Path) -> ModelCard:
    """The folder's card; a missing or invalid one is a ``ValueError`` naming the file and the field."""
    path = folder / CARD_FILE
    if not path.is_file():
        raise ValueError(f"shipped model {folder.name!r} has no card at {path}")
    try:
        card = ModelCard.model_validate(json.loads(path.read_text()))
    except (ValidationError, json.JSONDecodeError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        where = ".".join(str(p) for p in first["loc"]) if first else ""
        raise ValueError(f"card {path} is invalid: {first['msg'] + ' at ' + where if first else exc}") from None
    if card.name != folder.name:
        raise ValueError(f"card {path} names model {card.name!r}, but its folder is {folder.name!r}")
    return card


def shipped_models(directory: str | os.PathLike[str] | None = None) -> list[ShippedModel]:
    """Every folder of the reference folder that holds a card (valid or not), by name. The listing the
    `vid2vid models` command group shows; checksums are the weights registry's job (``models.weights``)."""
    root = reference_dir(directory)
    found = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir() and (p / CARD_FILE).exists()) if root.is_dir() else []:
        try:
            found.append(ShippedModel(folder.name, folder, read_card(folder)))
        except ValueError as exc:
            found.append(ShippedModel(folder.name, folder, None, str(exc)))
    return found


def write_card(folder: Path, card: ModelCard, markdown: str) -> None:
    from storage.atomic import atomic_write_bytes

    atomic_write_bytes(folder / CARD_FILE, (json.dumps(card.model_dump(mode="json"), indent=2) + "\n").encode())
    atomic_write_bytes(folder / CARD_MARKDOWN, markdown.encode())
