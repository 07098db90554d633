"""``reference:<name>`` → the shipped model file, verified against its card's sha256 by the weights registry.

Every place that takes a model file (``--init-from``, ``evaluate --runs``, ``synthesize --checkpoint``) goes
through ``models.vid2vid.checkpoint``, which calls :func:`resolve_model_file` first.
"""

from __future__ import annotations

import os
from pathlib import Path

from models import weights
from models.reference.card import PREFIX, reference_dir, shipped_models


def is_reference(text: str | os.PathLike[str]) -> bool:
    return str(text).startswith(PREFIX)


def resolve_model_file(text: str | os.PathLike[str]) -> Path:
    """``text`` as a path, or for ``reference:<name>`` the shipped file after its checksum passed; an unknown
    name is a ``ValueError`` listing the shipped ones, a corrupt file the registry's ``ChecksumMismatchError``."""
    if not is_reference(text):
        return Path(text)
    name = str(text)[len(PREFIX):]
    spec = weights.REGISTRY.get(f"{PREFIX}{name}")
    if spec is None:
        shipped = shipped_models()
        broken = next((m for m in shipped if m.name == name and m.problem), None)
        if broken is not None:
            raise ValueError(f"shipped reference model {name!r} cannot be used: {broken.problem}")
        names = ", ".join(m.name for m in shipped if m.card) or "none"
        raise ValueError(f"no shipped reference model {name!r} in {reference_dir()} (shipped: {names}); "
                         f"`make reference-models` or `vid2vid reference-model --name NAME` builds them")
    path = weights.resolve(spec)
    weights.verify_checksum(spec, path)
    return path
