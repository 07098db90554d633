"""Shared plumbing for the OpenMMLab adapters (mmsegmentation, mmdet): an optional extra.

mmseg/mmdet need a full mmcv 2.1.0 with ops, which has no wheel for this torch and is built from source
once per machine (scripts/build_mmcv_wheel.sh, ``make openmmlab``). Configs ship inside the packages
(``<pkg>/.mim/configs``). Checkpoints come through the weights registry; OpenMMLab checkpoints carry numpy
objects in their ``meta``, which ``weights_only`` loading refuses unless those types are allow-listed.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch


class OpenMMLabUnavailableError(RuntimeError):
    """mmcv/mmseg/mmdet are not installed: a setup problem, not bad input."""


def require(package: str) -> Any:
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise OpenMMLabUnavailableError(
            f"{package} is not importable ({exc}); install the OpenMMLab extra with `make openmmlab` "
            f"(builds mmcv 2.1.0 once, then mmsegmentation 1.2.2 / mmdet 3.3.0)") from exc


def config_path(package: str, relative: str) -> Path:
    """A config shipped inside ``package`` (e.g. mmseg, 'deeplabv3/deeplabv3_r50-d8_4xb2-80k_cityscapes-512x1024.py')."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise OpenMMLabUnavailableError(f"{package} is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / ".mim" / "configs" / relative
    if not path.is_file():
        raise FileNotFoundError(f"no config {relative} in {package}'s bundled configs ({path})")
    return path


def load_config(package: str, relative: str) -> Any:
    """The bundled config with SyncBN → BN (SyncBN needs a process group; inference does not)."""
    mmengine = require("mmengine")
    cfg = mmengine.Config.fromfile(str(config_path(package, relative)))

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "SyncBN":
                node["type"] = "BN"
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(cfg._cfg_dict)
    return cfg


_MULTIARRAY = np._core.multiarray
# published checkpoints were pickled under numpy 1.x names ("numpy.core..."), fresh ones under numpy 2.x
NUMPY_META_GLOBALS: list = [
    _MULTIARRAY._reconstruct, _MULTIARRAY.scalar, np.ndarray, np.dtype,
    (_MULTIARRAY._reconstruct, "numpy.core.multiarray._reconstruct"),
    (_MULTIARRAY.scalar, "numpy.core.multiarray.scalar"),
    *{type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "uint8", "bool")},
]


def allow_numpy_meta() -> Any:
    """Context manager: let ``torch.load(weights_only=True)`` read OpenMMLab checkpoints' numpy metadata."""
    return torch.serialization.safe_globals(NUMPY_META_GLOBALS)


def build_model(apis_module: str, init: str, package: str, config: str, weights: str,
                weights_dir: str | None, device: str) -> tuple[Any, Any]:
    """(the package's apis module, an eval-mode model from its bundled config with registry weights, strictly)."""
    from models.weights import get_spec, load_into

    apis = require(apis_module)
    net = getattr(apis, init)(load_config(package, config), checkpoint=None, device=device)
    with allow_numpy_meta():
        load_into(net, get_spec(weights), weights_dir)  # a foreign key layout is an error, never a partial load
    return apis, net.eval()
