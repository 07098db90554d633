"""What the released vid2vid models' inputs are and how our preprocessing produces each (``vid2vid weights``).

Its own module, above both the preprocessing registry and the model presets: in ``models/weights.py`` it
closed an import circle (weights → registry → config → weights, through the backends).
"""

from __future__ import annotations

import os
from pathlib import Path

from models.preprocess.registry import IMPORT_BACKENDS
from models.vid2vid.config import CONFIG_DIR, load_model_config, load_official


def official_inputs(config_dir: str | os.PathLike[str] | None = None) -> list[dict[str, str]]:
    """One row per input of every preset describing a released model (an ``official`` block): its encoding,
    how our preprocessing produces it (computed exactly, through an import door only, or approximately)
    and what cannot be produced here. The released weights are usable only with these encodings."""
    rows = []
    for path in sorted(Path(config_dir or CONFIG_DIR).glob("*.yaml")):
        official = load_official(path)
        if official is None:
            continue
        config = load_model_config(path)
        for spec in config.input.sources:
            entry = official.inputs[spec.name]
            def computed_here(choice: str) -> bool:
                return choice.partition("=")[2].partition(":")[0] not in IMPORT_BACKENDS

            computed = [c for c in entry.exact if computed_here(c)]
            approx = [c for c in entry.approximate if computed_here(c)]
            from_frames = ("exactly" if computed else "approximately" if approx else
                           "no: import door only" if entry.exact else "no: not produced here")
            space = getattr(spec, "label_space", None)
            encoding = f"{spec.encoding} ({spec.channels} ch{', ' + space if space else ''})"
            rows.append({"preset": config.name, "release": official.release, "input": spec.name,
                         "stage": spec.stage, "encoding": encoding,
                         "exact via": ", ".join(f"{c} (import)" if c not in computed else c for c in entry.exact) or "-",
                         "approximate via": ", ".join(entry.approximate) or "-",
                         "computed from frames here": from_frames, "note": entry.note})
    return rows
