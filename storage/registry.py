"""The model registry: every completed training run with its lineage, its held-out metrics, and the champion
of each (dataset, config) with the decisions that made it.

Rows live in the runs root's SQL database (``storage/database.py``: SQLite by default, Postgres in the
cluster form), written in transactions. The champion changes only by compare-and-swap: a promotion names
the champion it was judged against, and is refused (``ChampionChanged``) when another writer promoted in
between, so two retrains finishing at once leave one champion and lose no row. Promotion and rollback move
a pointer; no file is ever deleted. Paths inside the runs root are stored relative to it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.database import database_url, make_engine, run_sync

CHAMPION = "champion"
#: what a model reference looks like: DATASET/CONFIG@SELECTOR, SELECTOR one of champion, previous, latest or a run name
REFERENCE = re.compile(r"^(?P<dataset>[A-Za-z0-9][\w.-]*)/(?P<config>[A-Za-z0-9][\w.-]*)@(?P<selector>[\w.:-]+)$")
PROMOTED, REJECTED, ROLLED_BACK, BY_HAND = "promoted", "rejected", "rolled back", "promoted by hand"
CHANGES_CHAMPION = {PROMOTED, ROLLED_BACK, BY_HAND}


class RegistryError(ValueError):
    """A request the registry cannot answer as asked: an unknown reference, no earlier champion (exit 2)."""


class ChampionChanged(RuntimeError):
    """Another writer changed the champion after this promotion was judged against it."""


class _Base(DeclarativeBase):
    pass


def _now() -> datetime:
    return datetime.now(UTC)


class ModelRow(_Base):
    __tablename__ = "vid2vid_model"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(String(128), index=True)
    config: Mapped[str] = mapped_column(String(128), index=True)  # the model config's name
    config_hash: Mapped[str] = mapped_column(String(64))
    run_name: Mapped[str] = mapped_column(String(256))
    run_dir: Mapped[str] = mapped_column(String(1024), unique=True)
    model_path: Mapped[str] = mapped_column(String(1024))
    model_sha256: Mapped[str] = mapped_column(String(64), index=True)
    data_fingerprint: Mapped[str] = mapped_column(String(64))
    start: Mapped[str] = mapped_column(String(32))  # fresh | init-from | resume-from
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("vid2vid_model.id"), nullable=True)
    parent_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    parent_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    code_commit: Mapped[str] = mapped_column(String(64))
    steps: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class MetricsRow(_Base):
    """One evaluation of one model: its values, how they were computed and on which held-out data."""

    __tablename__ = "vid2vid_model_metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("vid2vid_model.id"), index=True)
    evaluation: Mapped[str] = mapped_column(String(1024))  # the evaluation folder
    data_fingerprint: Mapped[str] = mapped_column(String(64))
    protocol: Mapped[str] = mapped_column(Text)
    values: Mapped[str] = mapped_column(Text)  # JSON {metric: number or "n/a — why"}
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ChampionRow(_Base):
    __tablename__ = "vid2vid_champion"
    dataset: Mapped[str] = mapped_column(String(128), primary_key=True)
    config: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("vid2vid_model.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class DecisionRow(_Base):
    """A challenger judged (promoted or rejected), a rollback or a promotion by hand, with its evidence."""

    __tablename__ = "vid2vid_decision"
    __table_args__ = (UniqueConstraint("dataset", "config", "sequence", name="one_champion_change_per_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(String(128), index=True)
    config: Mapped[str] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[int] = mapped_column(ForeignKey("vid2vid_model.id"))  # the challenger / the model promoted
    champion_before: Mapped[int | None] = mapped_column(ForeignKey("vid2vid_model.id"), nullable=True)
    champion_after: Mapped[int | None] = mapped_column(ForeignKey("vid2vid_model.id"), nullable=True)
    sequence: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the champion version it made
    reasons: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of lines
    evidence: Mapped[str] = mapped_column(Text, default="{}")  # JSON: rows, videos, gate, evaluation, ...
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


@dataclass(frozen=True)
class NewModel:
    """What the train flow knows of a completed run when it registers it."""

    dataset: str
    config: str
    config_hash: str
    run_dir: str
    model_path: str
    model_sha256: str
    data_fingerprint: str
    start: str = "fresh"
    parent_path: str | None = None
    parent_sha256: str | None = None
    code_commit: str = "unknown"
    steps: int = 0


@dataclass(frozen=True)
class Model:
    id: int
    dataset: str
    config: str
    config_hash: str
    run_name: str
    run_dir: str
    model_path: str
    model_sha256: str
    data_fingerprint: str
    start: str
    parent_id: int | None
    parent_path: str | None
    code_commit: str
    steps: int
    created: datetime
    metrics: dict[str, Any] = field(default_factory=dict)  # the latest evaluation's values
    evaluation_fingerprint: str | None = None
    protocol: str | None = None

    @property
    def reference(self) -> str:
        return f"{self.dataset}/{self.config}@{self.run_name}"


@dataclass(frozen=True)
class Decision:
    id: int
    dataset: str
    config: str
    outcome: str
    model: Model
    champion_before: Model | None
    champion_after: Model | None
    reasons: list[str]
    evidence: dict[str, Any]
    created: datetime


def code_commit(project: Path | None = None) -> str:
    """The code a run was trained with: ``$VID2VID_CODE_COMMIT`` (images without .git), else git's HEAD of the
    project, ``-dirty`` when the work tree differs from it; ``unknown`` outside a checkout."""
    if os.environ.get("VID2VID_CODE_COMMIT"):
        return os.environ["VID2VID_CODE_COMMIT"]
    folder = project or Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=folder, capture_output=True, timeout=30)
        return head.stdout.strip()[:40] + ("-dirty" if dirty.returncode == 1 else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def parse_reference(text: str) -> tuple[str, str, str] | None:
    """(dataset, config, selector) of ``DATASET/CONFIG@SELECTOR``, or None when ``text`` is not one."""
    match = REFERENCE.match(text.strip())
    return (match["dataset"], match["config"], match["selector"]) if match else None


def is_reference(text: str) -> bool:
    """A model reference, not a path: the pattern matches and no such file exists."""
    return parse_reference(text) is not None and not Path(text).exists()


class Registry:
    """Async access to the registry tables of one database; one instance per event loop."""

    _created: set[str] = set()  # URLs whose tables this process has made

    def __init__(self, runs_root: str | os.PathLike[str], db_url: str | None = None) -> None:
        self.runs_root = Path(runs_root).resolve()
        self.url = database_url(self.runs_root, db_url)
        # reads never block (WAL); writes begin IMMEDIATE on SQLite, so two writers queue rather than fail
        self.engine, self.write_engine = make_engine(self.url), make_engine(self.url, immediate=True)
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)
        self.writer = async_sessionmaker(self.write_engine, expire_on_commit=False)

    async def create(self) -> None:
        if self.url in Registry._created:
            return
        for attempt in range(3):  # two processes creating the tables at once: the loser finds them made
            try:
                async with self.write_engine.begin() as connection:
                    await connection.run_sync(_Base.metadata.create_all)
                break
            except (IntegrityError, OperationalError, ProgrammingError):
                if attempt == 2:
                    raise
        Registry._created.add(self.url)

    async def close(self) -> None:
        await self.engine.dispose()
        await self.write_engine.dispose()

    # --- paths: relative to the runs root where they are inside it ------------------------------------------
    def _store(self, path: str) -> str:
        resolved = Path(path).resolve()
        return str(resolved.relative_to(self.runs_root)) if resolved.is_relative_to(self.runs_root) else str(resolved)

    def _load(self, stored: str) -> str:
        return stored if Path(stored).is_absolute() else str(self.runs_root / stored)

    def relative(self, path: str) -> str:
        """A path as the review app links it: relative to the runs root (absolute when outside it)."""
        return self._store(path)

    # --- models ---------------------------------------------------------------------------------------------
    async def register(self, new: NewModel) -> Model:
        """Adds a completed run (idempotent: a run folder registered again returns its row)."""
        try:
            async with self.writer() as session, session.begin():
                parent_id = await self._parent_id(session, new) if (new.parent_sha256 or new.parent_path) else None
                row = ModelRow(dataset=new.dataset, config=new.config, config_hash=new.config_hash,
                               run_name=Path(new.run_dir).name, run_dir=self._store(new.run_dir),
                               model_path=self._store(new.model_path), model_sha256=new.model_sha256,
                               data_fingerprint=new.data_fingerprint, start=new.start, parent_id=parent_id,
                               parent_path=self._store(new.parent_path) if new.parent_path else None,
                               parent_sha256=new.parent_sha256, code_commit=new.code_commit, steps=new.steps)
                session.add(row)
        except IntegrityError:
            found = await self.by_run_dir(new.run_dir)
            if found is None:
                raise
            return found
        return await self.get(row.id)

    async def _parent_id(self, session, new: NewModel) -> int | None:  # noqa: ANN001 - AsyncSession
        """The registered model the run started from: same file, else same content (an earlier copy)."""
        if new.parent_path:
            found = (await session.execute(select(ModelRow.id).where(
                ModelRow.model_path == self._store(new.parent_path)).order_by(ModelRow.id.desc()))).first()
            if found:
                return found[0]
        if new.parent_sha256:
            found = (await session.execute(select(ModelRow.id).where(
                ModelRow.model_sha256 == new.parent_sha256).order_by(ModelRow.id.desc()))).first()
            if found:
                return found[0]
        return None

    async def _model(self, session, row: ModelRow) -> Model:  # noqa: ANN001 - AsyncSession
        metrics = (await session.execute(select(MetricsRow).where(MetricsRow.model_id == row.id)
                                         .order_by(MetricsRow.id.desc()).limit(1))).scalar_one_or_none()
        return Model(id=row.id, dataset=row.dataset, config=row.config, config_hash=row.config_hash,
                     run_name=row.run_name, run_dir=self._load(row.run_dir), model_path=self._load(row.model_path),
                     model_sha256=row.model_sha256, data_fingerprint=row.data_fingerprint, start=row.start,
                     parent_id=row.parent_id, parent_path=self._load(row.parent_path) if row.parent_path else None,
                     code_commit=row.code_commit, steps=row.steps, created=row.created,
                     metrics=json.loads(metrics.values) if metrics else {},
                     evaluation_fingerprint=metrics.data_fingerprint if metrics else None,
                     protocol=metrics.protocol if metrics else None)

    async def get(self, model_id: int) -> Model:
        async with self.session() as session:
            row = await session.get(ModelRow, model_id)
            if row is None:
                raise RegistryError(f"no registered model with id {model_id}")
            return await self._model(session, row)

    async def by_run_dir(self, run_dir: str) -> Model | None:
        async with self.session() as session:
            row = (await session.execute(select(ModelRow).where(ModelRow.run_dir == self._store(run_dir)))).scalar()
            return await self._model(session, row) if row else None

    async def by_model_path(self, model_path: str) -> Model | None:
        async with self.session() as session:
            row = (await session.execute(select(ModelRow).where(ModelRow.model_path == self._store(model_path))
                                         .order_by(ModelRow.id.desc()))).scalars().first()
            return await self._model(session, row) if row else None

    async def models(self, dataset: str | None = None, config: str | None = None) -> list[Model]:
        async with self.session() as session:
            query = select(ModelRow).order_by(ModelRow.id)
            if dataset:
                query = query.where(ModelRow.dataset == dataset)
            if config:
                query = query.where(ModelRow.config == config)
            return [await self._model(session, row) for row in (await session.execute(query)).scalars()]

    async def lineage(self, model: Model) -> list[Model]:
        """The model, its parent, the parent's parent … back to the first model (a cycle cannot occur: a
        parent is always registered before its child)."""
        chain = [model]
        while chain[-1].parent_id is not None and len(chain) < 10_000:
            chain.append(await self.get(chain[-1].parent_id))
        return chain

    async def record_metrics(self, model_id: int, evaluation: str, data_fingerprint: str, protocol: str,
                             values: dict[str, Any]) -> None:
        async with self.writer() as session, session.begin():
            session.add(MetricsRow(model_id=model_id, evaluation=self._store(evaluation),
                                   data_fingerprint=data_fingerprint, protocol=protocol,
                                   values=json.dumps(values, default=str)))

    # --- champions ------------------------------------------------------------------------------------------
    async def champion(self, dataset: str, config: str) -> Model | None:
        async with self.session() as session:
            row = await session.get(ChampionRow, (dataset, config))
            return await self.get(row.model_id) if row else None

    async def champions(self, dataset: str | None = None) -> dict[tuple[str, str], int]:
        async with self.session() as session:
            query = select(ChampionRow)
            if dataset:
                query = query.where(ChampionRow.dataset == dataset)
            return {(r.dataset, r.config): r.model_id for r in (await session.execute(query)).scalars()}

    async def resolve(self, reference: str) -> Model:
        """``DATASET/CONFIG@champion`` (the champion), ``@previous`` (the champion the latest change replaced),
        ``@latest`` (the newest registered run) or ``@RUN`` (a run by name)."""
        parsed = parse_reference(reference)
        if parsed is None:
            raise RegistryError(f"{reference!r} is not a model reference: use DATASET/CONFIG@champion, @previous, "
                                "@latest or @RUN_NAME")
        dataset, config, selector = parsed
        if selector == CHAMPION:
            found = await self.champion(dataset, config)
            if found is None:
                raise RegistryError(f"{reference}: {dataset}/{config} has no champion yet "
                                    f"({await self._known(dataset, config)})")
            return found
        if selector == "previous":  # the champion the latest change replaced (after a rollback: the one rolled back)
            changes = [d for d in await self.decisions(dataset, config) if d.outcome in CHANGES_CHAMPION]
            if not changes or changes[-1].champion_before is None:
                raise RegistryError(f"{reference}: {dataset}/{config} has had no earlier champion")
            return changes[-1].champion_before
        models = await self.models(dataset, config)
        if selector == "latest" and models:
            return models[-1]
        named = [m for m in models if m.run_name == selector]
        if not named:
            raise RegistryError(f"{reference}: no registered run {selector!r} of {dataset}/{config} "
                                f"({await self._known(dataset, config)})")
        return named[-1]

    async def _known(self, dataset: str, config: str) -> str:
        models = await self.models(dataset)
        if not models:
            return f"no model of dataset {dataset!r} is registered under {self.runs_root}"
        configs = sorted({m.config for m in models})
        runs = [m.run_name for m in models if m.config == config]
        return (f"registered runs: {', '.join(runs[-5:])}" if runs
                else f"configs registered for {dataset!r}: {', '.join(configs)}")

    async def _stack(self, session, dataset: str, config: str) -> list[int]:  # noqa: ANN001 - AsyncSession
        """The champions in the order they were promoted, rollbacks popped: the last is the champion."""
        stack: list[int] = []
        rows = (await session.execute(select(DecisionRow).where(
            DecisionRow.dataset == dataset, DecisionRow.config == config,
            DecisionRow.outcome.in_(CHANGES_CHAMPION)).order_by(DecisionRow.id))).scalars()
        for row in rows:
            if row.outcome == ROLLED_BACK:
                if stack:
                    stack.pop()
            elif row.champion_after is not None:
                stack.append(row.champion_after)
        return stack

    async def _rollback_target(self, dataset: str, config: str) -> int:
        async with self.session() as session:
            stack = await self._stack(session, dataset, config)
        if len(stack) < 2:
            raise RegistryError(f"{dataset}/{config} has no earlier champion to go back to"
                                + ("" if stack else " (it has no champion)"))
        return stack[-2]

    async def decide(self, model_id: int, *, promote: bool, judged_against: int | None, reasons: list[str],
                     evidence: dict[str, Any], outcome: str | None = None) -> Decision:
        """Records a decision about ``model_id``; with ``promote`` it becomes the champion of its
        (dataset, config) only if the champion is still ``judged_against`` (else ``ChampionChanged``, and
        nothing is written)."""
        model = await self.get(model_id)
        key = (model.dataset, model.config)
        async with self.writer() as session:
            async with session.begin():
                current = await session.get(ChampionRow, key)
                before = current.model_id if current else None
                sequence = None
                if promote:
                    if before != judged_against:
                        raise ChampionChanged(f"the champion of {key[0]}/{key[1]} is now model {before}, "
                                              f"not {judged_against}")
                    sequence = await self._swap(session, current, key, model_id)
                after = model_id if promote else before
                row = DecisionRow(dataset=key[0], config=key[1], outcome=outcome or (PROMOTED if promote else REJECTED),
                                  model_id=model_id, champion_before=before, champion_after=after,
                                  sequence=sequence, reasons=json.dumps(reasons),
                                  evidence=json.dumps(evidence, default=str))
                session.add(row)
        return await self.decision(row.id)

    async def _swap(self, session, current: ChampionRow | None, key: tuple[str, str], model_id: int) -> int:  # noqa: ANN001
        """Compare-and-swap of the champion row: the version read must still be the version written over."""
        if current is None:
            session.add(ChampionRow(dataset=key[0], config=key[1], model_id=model_id, version=1))
            try:
                await session.flush()
            except IntegrityError:
                raise ChampionChanged(f"another model became the first champion of {key[0]}/{key[1]}") from None
            return 1
        done = await session.execute(update(ChampionRow).where(
            ChampionRow.dataset == key[0], ChampionRow.config == key[1], ChampionRow.version == current.version,
        ).values(model_id=model_id, version=current.version + 1, updated=_now()).execution_options(
            synchronize_session=False))
        if done.rowcount != 1:
            raise ChampionChanged(f"the champion of {key[0]}/{key[1]} changed meanwhile")
        return current.version + 1

    async def promote_by_hand(self, reference: str, reason: str = "") -> Decision:
        model = await self.resolve(reference)
        current = await self.champion(model.dataset, model.config)
        if current and current.id == model.id:
            raise RegistryError(f"{model.reference} is already the champion of {model.dataset}/{model.config}")
        return await self.decide(model.id, promote=True, judged_against=current.id if current else None,
                                 reasons=[reason or "promoted by hand"], evidence={}, outcome=BY_HAND)

    async def rollback(self, dataset: str, config: str, reason: str = "") -> Decision:
        """The champion before the current one becomes champion again (files stay where they are)."""
        current = await self.champion(dataset, config)
        target = await self._rollback_target(dataset, config)
        return await self.decide(target, promote=True, judged_against=current.id if current else None,
                                 reasons=[reason or f"rolled back from {current.reference if current else 'none'}"],
                                 evidence={}, outcome=ROLLED_BACK)

    async def decision(self, decision_id: int) -> Decision:
        async with self.session() as session:
            row = await session.get(DecisionRow, decision_id)
        if row is None:
            raise RegistryError(f"no decision with id {decision_id}")
        return await self._decision(row)

    async def _decision(self, row: DecisionRow) -> Decision:
        async def maybe(model_id: int | None) -> Model | None:
            return await self.get(model_id) if model_id is not None else None

        return Decision(id=row.id, dataset=row.dataset, config=row.config, outcome=row.outcome,
                        model=await self.get(row.model_id), champion_before=await maybe(row.champion_before),
                        champion_after=await maybe(row.champion_after), reasons=json.loads(row.reasons),
                        evidence=json.loads(row.evidence), created=row.created)

    async def decisions(self, dataset: str | None = None, config: str | None = None) -> list[Decision]:
        async with self.session() as session:
            query = select(DecisionRow).order_by(DecisionRow.id)
            if dataset:
                query = query.where(DecisionRow.dataset == dataset)
            if config:
                query = query.where(DecisionRow.config == config)
            rows = list((await session.execute(query)).scalars())
        return [await self._decision(row) for row in rows]

    async def tried(self, dataset: str, config: str, data_fingerprint: str, config_hash: str,
                    parent_id: int | None) -> Model | None:
        """The newest run of this config already trained on this data with this config from this parent."""
        for model in reversed(await self.models(dataset, config)):
            if (model.data_fingerprint, model.config_hash, model.parent_id) == (data_fingerprint, config_hash, parent_id):
                return model
        return None


def sync(runs_root: str | os.PathLike[str], db_url: str | None = None) -> "SyncRegistry":
    return SyncRegistry(runs_root, db_url)


class SyncRegistry:
    """``Registry``'s methods for synchronous callers (the CLI, flows, tasks): each call opens the database,
    makes the tables when this process has not yet, runs in its own transaction(s) and closes again."""

    def __init__(self, runs_root: str | os.PathLike[str], db_url: str | None = None) -> None:
        self.runs_root, self.db_url = Path(runs_root), db_url

    def relative(self, path: str) -> str:
        """A path as the registry stores it and the review app links it (no database needed)."""
        root, resolved = self.runs_root.resolve(), Path(path).resolve()
        return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(Registry, name)
        if not callable(method):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            async def work() -> Any:
                registry = Registry(self.runs_root, self.db_url)
                try:
                    await registry.create()
                    result = getattr(registry, name)(*args, **kwargs)
                    return await result if isinstance(result, Awaitable) else result
                finally:
                    await registry.close()
            return run_sync(work)

        return call


def resolve_model_path(text: str, runs_root: str | os.PathLike[str], db_url: str | None = None) -> str:
    """A model file from a path or a registry reference (``street/demo_street@champion``): a path is returned
    as given; a reference is looked up once, here, at the edge (the CLI, a deployment's flow)."""
    if not is_reference(text):
        return text
    return sync(runs_root, db_url).resolve(text).model_path
