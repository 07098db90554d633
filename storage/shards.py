"""Stage shards: one Parquet file per clip per stage, one row per frame (docs/DESIGN.md, data contract).

Rows are written in small row groups so a window of frames is read without touching the rest of the
file. Shard-level facts (stage, backend, fingerprint, codecs) live in the file's key-value metadata, so
deciding whether a stage is up to date reads only the footer. Writes go through ``atomic_path``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage.atomic import atomic_path
from storage.codecs import Codec, get_codec
from storage.errors import ShardError

META_KEY = b"vid2vid"
DEFAULT_ROW_GROUP = 4
Frame = dict[str, Any]


@dataclass(frozen=True)
class ShardMeta:
    stage: str
    clip_id: str
    backend: str
    fingerprint: str
    code_version: str
    codecs: dict[str, str]  # payload column -> codec name
    config_hash: str = ""
    row_group_size: int = DEFAULT_ROW_GROUP
    height: int = 0
    width: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "ShardMeta":
        return cls(**json.loads(data))


def frame_size(payload: np.ndarray, channels_first: bool | None = None) -> tuple[int, int]:
    """(height, width) of an H×W, H×W×C or C×H×W (flow) payload. ``channels_first`` comes from the codec;
    without it, a 3-D payload is H×W×C when C ≤ 4, else C×H×W."""
    if payload.ndim == 3 and channels_first is not None:
        return (int(payload.shape[1]), int(payload.shape[2])) if channels_first else \
            (int(payload.shape[0]), int(payload.shape[1]))
    if payload.ndim == 2:
        return int(payload.shape[0]), int(payload.shape[1])
    if payload.ndim == 3 and payload.shape[-1] in (1, 3, 4):
        return int(payload.shape[0]), int(payload.shape[1])
    if payload.ndim == 3:
        return int(payload.shape[1]), int(payload.shape[2])
    raise ShardError(f"cannot tell the frame size of a payload shaped {payload.shape}")


def _scalar_type(value: Any) -> pa.DataType:
    if isinstance(value, (bool, np.bool_)):
        return pa.bool_()
    if isinstance(value, (int, np.integer)):
        return pa.int64()
    if isinstance(value, (float, np.floating)):
        return pa.float64()
    if isinstance(value, str):
        return pa.string()
    raise ShardError(f"unsupported stage column value {value!r} ({type(value).__name__})")


def write_shard(
    path: str | os.PathLike[str],
    meta: ShardMeta,
    frames: Iterable[Mapping[str, Any]],
) -> ShardMeta:
    """Stream ``frames`` (dicts of payload arrays and scalar columns) into an atomically placed shard.

    Every frame must carry each payload column named in ``meta.codecs``; other keys become typed columns.
    Frame sizes must agree within the clip. Returns the meta as written (with height and width filled).
    Memory holds one row group of encoded frames at a time.
    """
    codecs = {column: get_codec(name) for column, name in meta.codecs.items()}
    group = meta.row_group_size
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    scalar_names: list[str] = []
    written = meta
    rows: list[dict[str, Any]] = []
    frame_idx = 0

    def flush(handle_path: Path) -> None:
        nonlocal writer, rows
        if not rows:
            return
        assert schema is not None
        if writer is None:
            compression = {name: ("zstd" if codecs[name].compress_column else "none") for name in codecs}
            compression.update({"clip_id": "zstd", "frame_idx": "zstd"}, **{name: "zstd" for name in scalar_names})
            writer = pq.ParquetWriter(
                handle_path, schema, compression=compression, use_dictionary=["clip_id"], write_statistics=["frame_idx"]
            )
        table = pa.Table.from_pylist(rows, schema=schema)
        writer.write_table(table, row_group_size=group)
        rows = []

    with atomic_path(path) as tmp:
        try:
            for frame in frames:
                missing = [c for c in codecs if c not in frame]
                if missing:
                    raise ShardError(f"{meta.stage}/{meta.clip_id} frame {frame_idx} lacks payload columns {missing}")
                first = next(iter(codecs))
                size = frame_size(np.asarray(frame[first]), codecs[first].channels_first)
                if schema is not None and size != (written.height, written.width):
                    raise ShardError(f"{meta.stage}/{meta.clip_id} frame {frame_idx} is {size[1]}x{size[0]}, "
                                     f"the clip's earlier frames are {written.width}x{written.height}")
                if schema is None:
                    scalar_names = sorted(k for k in frame if k not in codecs)
                    fields = [pa.field("clip_id", pa.string()), pa.field("frame_idx", pa.int32())]
                    fields += [pa.field(c, pa.binary()) for c in codecs]
                    fields += [pa.field(k, _scalar_type(frame[k])) for k in scalar_names]
                    written = ShardMeta(**{**asdict(meta), "height": size[0], "width": size[1]})
                    schema = pa.schema(fields, metadata={META_KEY: written.to_json()})
                row: dict[str, Any] = {"clip_id": meta.clip_id, "frame_idx": frame_idx}
                for column, codec in codecs.items():
                    row[column] = codec.encode(np.asarray(frame[column]))
                for name in scalar_names:
                    row[name] = frame.get(name)
                rows.append(row)
                frame_idx += 1
                if len(rows) == group:
                    flush(tmp)
            if schema is None:
                raise ShardError(f"{meta.stage}/{meta.clip_id}: no frames to write")
            flush(tmp)
        finally:
            if writer is not None:
                writer.close()
    return written


def read_meta(path: str | os.PathLike[str]) -> ShardMeta | None:
    """The shard's metadata from its footer, or None when there is no readable shard at ``path``."""
    try:
        with pa.OSFile(str(path)) as handle:  # one handle: a concurrent replace cannot mix two files
            schema = pq.read_schema(handle)
    except (FileNotFoundError, OSError, pa.ArrowInvalid):
        return None
    raw = (schema.metadata or {}).get(META_KEY)
    return ShardMeta.from_json(raw) if raw else None


class ShardReader:
    """Random access to the frames of one shard; decodes payloads on request."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            # one mapping of one inode: a concurrent atomic replace leaves this reader on the old file
            self._file = pq.ParquetFile(pa.memory_map(str(self.path)))
        except (FileNotFoundError, OSError, pa.ArrowInvalid) as exc:
            raise ShardError(f"cannot open shard {self.path}: {exc}") from exc
        raw = (self._file.schema_arrow.metadata or {}).get(META_KEY)
        if raw is None:
            raise ShardError(f"{self.path} is not a vid2vid shard (no '{META_KEY.decode()}' metadata)")
        self.meta = ShardMeta.from_json(raw)
        self._codecs = {c: get_codec(n) for c, n in self.meta.codecs.items()}
        self._starts = np.cumsum([0] + [self._file.metadata.row_group(i).num_rows
                                        for i in range(self._file.num_row_groups)])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def codec(self, column: str = "payload") -> Codec:
        """The codec of one payload column (what its values are: pictures, or codes resized by nearest)."""
        return self._codecs[column]

    @property
    def columns(self) -> list[str]:
        return [name for name in self._file.schema_arrow.names if name not in ("clip_id",)]

    def read(self, start: int = 0, stop: int | None = None, columns: Sequence[str] | None = None,
             decode: bool = True) -> list[Frame]:
        """Frames ``start:stop`` as dicts; only the row groups that hold them are read."""
        n = len(self)
        stop = n if stop is None else stop
        if not 0 <= start <= stop <= n:
            raise IndexError(f"frames {start}:{stop} out of range for {self.path} with {n} frames")
        if start == stop:
            return []
        first = int(np.searchsorted(self._starts, start, side="right") - 1)
        last = int(np.searchsorted(self._starts, stop, side="left") - 1)
        wanted = None if columns is None else sorted({"frame_idx", *columns})
        table = self._file.read_row_groups(list(range(first, last + 1)), columns=wanted)
        offset = start - int(self._starts[first])
        table = table.slice(offset, stop - start)
        frames = table.to_pylist()
        if decode:
            for frame in frames:
                for column, codec in self._codecs.items():
                    if column in frame:
                        frame[column] = codec.decode(frame[column])
        return frames

    def iter_frames(self, columns: Sequence[str] | None = None, chunk: int | None = None) -> Iterator[Frame]:
        step = chunk or self.meta.row_group_size
        for start in range(0, len(self), step):
            yield from self.read(start, min(start + step, len(self)), columns)
