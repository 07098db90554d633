"""Input fingerprints: a stage output is rebuilt only when what it was made from changed."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from storage.shards import read_meta

STORAGE_CODE_VERSION = "storage/1"


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_hash(value: Any) -> str:
    """sha256 of a JSON-able value with sorted keys: the same config always hashes the same."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint(stage: str, backend: str, config: Mapping[str, Any], upstream: Sequence[str],
                code_version: str) -> str:
    """Hash of everything a stage output depends on: upstream content hashes, config, code versions."""
    return canonical_hash({
        "stage": stage, "backend": backend, "config": dict(config), "upstream": list(upstream),
        "code": [code_version, STORAGE_CODE_VERSION],
    })


def is_current(path: str | os.PathLike[str], expected: str) -> bool:
    """True when a complete shard exists at ``path`` and was made from exactly these inputs."""
    meta = read_meta(path)
    return meta is not None and meta.fingerprint == expected


def upstream_hashes(paths: Sequence[Path]) -> list[str]:
    """Content hashes of upstream shards (their bytes, so a hand-replaced shard also triggers a rebuild)."""
    return [sha256_file(p) for p in paths]
