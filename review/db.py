"""The study database: studies, their trials, raters (one link token each) and votes.

One vote per (rater, trial) is a unique constraint, so a repeated or concurrent second vote changes
nothing. SQLAlchemy's async engine over the drivers Prefect already installs (aiosqlite, asyncpg).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint, event, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def _now() -> datetime:
    return datetime.now(UTC)


class Study(Base):
    __tablename__ = "vid2vid_study"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(128))
    evaluation: Mapped[str] = mapped_column(String(128))
    run_a: Mapped[str] = mapped_column(String(256))
    run_b: Mapped[str] = mapped_column(String(256))
    variant_a: Mapped[str] = mapped_column(String(256), default="")
    variant_b: Mapped[str] = mapped_column(String(256), default="")
    kind: Mapped[str] = mapped_column(String(16))  # short | long
    question: Mapped[str] = mapped_column(String(256))
    owner_sha256: Mapped[str] = mapped_column(String(64), default="")  # sha256 of the owner token: results, run names
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Trial(Base):
    """One pair of videos of the same source. For an attention check the known better side is ``expected``."""

    __tablename__ = "vid2vid_study_trial"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("vid2vid_study.id"), index=True)
    clip_id: Mapped[str] = mapped_column(String(256))
    video_a: Mapped[str] = mapped_column(String(1024))  # paths relative to the runs root
    video_b: Mapped[str] = mapped_column(String(1024))
    attention: Mapped[bool] = mapped_column(Boolean, default=False)
    expected: Mapped[str | None] = mapped_column(String(1), nullable=True)  # "a" | "b" for attention checks


class Rater(Base):
    __tablename__ = "vid2vid_study_rater"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("vid2vid_study.id"), index=True)
    token: Mapped[str] = mapped_column(String(128), unique=True)
    seed: Mapped[int] = mapped_column(Integer)  # this rater's trial order and left/right sides
    label: Mapped[str] = mapped_column(String(128), default="")


class Vote(Base):
    __tablename__ = "vid2vid_study_vote"
    __table_args__ = (UniqueConstraint("rater_id", "trial_id", name="one_vote_per_rater_and_trial"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("vid2vid_study_rater.id"), index=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("vid2vid_study_trial.id"), index=True)
    choice: Mapped[str] = mapped_column(String(1))  # "a" | "b": the run the rater preferred
    left: Mapped[str] = mapped_column(String(1))  # which of a/b was shown on the left
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


def make_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(connection, _record) -> None:  # noqa: ANN001 - DBAPI connection
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
    return engine


class Database:
    """An engine and its session factory; ``create()`` makes the tables once (idempotent)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)

    async def create(self) -> None:
        async with self.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
            await connection.run_sync(_add_missing_columns)

    async def close(self) -> None:
        await self.engine.dispose()


def _add_missing_columns(connection) -> None:  # noqa: ANN001 - a sync Connection inside run_sync
    """Databases made before a column existed get it (empty): a study without an owner token shows its
    results only through `vid2vid study results`, which reads the database directly."""
    present = {c["name"] for c in inspect(connection).get_columns(Study.__tablename__)}
    if "owner_sha256" not in present:
        connection.execute(text(f"ALTER TABLE {Study.__tablename__} ADD COLUMN owner_sha256 VARCHAR(64) DEFAULT ''"))
