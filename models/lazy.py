"""Lazy package faces: ``from models.vid2vid import Vid2VidTrainer`` keeps working, but importing a package
(or one light submodule of it, e.g. ``models.vid2vid.config``) no longer imports every heavy sibling.

Why: a package ``__init__`` that imports its submodules makes ``import models.vid2vid.config`` load torch and
torchvision (7 s), and every CLI call and test process pays it. Names resolve on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_face(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose public ``name`` lives in ``exports[name]`` (a submodule)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(importlib.import_module(package), name, value)  # resolved once
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
