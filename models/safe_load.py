"""``torch.load`` restricted to tensors and plain data, with errors that name the file and say what is wrong.

torch's own messages for a bad file are raw (``EOFError`` with no text, "failed finding central
directory") or advise ``weights_only=False``, which would let a hostile file run code. This module
never does that and never suggests it: a file that needs pickled classes is refused.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch


def load_problem(path: Path, exc: BaseException) -> str:
    """One line on why ``torch.load(path, weights_only=True)`` failed, without torch's unsafe advice."""
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (f"it holds pickled Python objects ({found.group(1)}), not only tensors and plain data; such files "
                f"can run code when loaded, so it is refused")
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in text:
        return "it is truncated or corrupt (not a PyTorch file that holds only tensors and plain data)"
    if isinstance(exc, EOFError) or "central directory" in text or "failed reading zip archive" in text:
        return "it is truncated or corrupt (not a complete PyTorch file)"
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"it cannot be read: {type(exc).__name__}: {first[:200]}"


def torch_load_safely(path: str | os.PathLike[str], error: type[Exception], what: str,
                      map_location: str | torch.device = "cpu") -> Any:
    """Load ``path`` with ``weights_only=True``; any failure becomes ``error`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist" if not path.exists() else f"{what} {path} is not a file")
    if path.stat().st_size == 0:
        raise error(f"{what} {path} is empty (0 bytes)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files; all become one clear error
        raise error(f"{what} {path}: {load_problem(path, exc)}") from None
