"""The registry's rules without Prefect: lineage, champions by compare-and-swap, rollback, references, and two
writers at once (processes, on SQLite and on PostgreSQL) losing nothing."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from storage.registry import (BY_HAND, PROMOTED, REJECTED, ROLLED_BACK, ChampionChanged, NewModel, RegistryError,
                              is_reference, resolve_model_path, sync)
from tests.review.test_postgres import postgres_url  # noqa: F401 - the fixture: a private PostgreSQL cluster


def _new(runs: Path, name: str, *, parent: Path | None = None, data: str = "d1", config: str = "tiny") -> NewModel:
    folder = runs / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pt").write_bytes(name.encode())  # the registry never reads a model file
    return NewModel(dataset="street", config=config, config_hash="h" + config, run_dir=str(folder),
                    model_path=str(folder / "model.pt"), model_sha256=f"sha-{name}", data_fingerprint=data,
                    start="init-from" if parent else "fresh", parent_path=str(parent) if parent else None,
                    parent_sha256=None, code_commit="abc", steps=3)


def test_lineage_champions_rollback_and_references(tmp_path):
    runs = tmp_path / "runs"
    registry = sync(runs)
    a = registry.register(_new(runs, "a"))
    b = registry.register(_new(runs, "b", parent=runs / "a" / "model.pt", data="d2"))
    c = registry.register(_new(runs, "c", parent=runs / "b" / "model.pt", data="d3"))
    y = registry.register(_new(runs, "y", config="other"))
    assert registry.register(_new(runs, "a")).id == a.id  # a run registered twice is one row
    assert [m.run_name for m in registry.lineage(c)] == ["c", "b", "a"]
    assert b.parent_id == a.id and c.parent_id == b.id and y.parent_id is None
    assert registry.by_run_dir(str(runs / "b")).model_path == str(runs / "b" / "model.pt")

    first = registry.decide(a.id, promote=True, judged_against=None, reasons=["meets minimums"], evidence={})
    assert first.outcome == PROMOTED and registry.champion("street", "tiny").id == a.id
    with pytest.raises(ChampionChanged):  # judged against no champion, but there is one now: nothing written
        registry.decide(b.id, promote=True, judged_against=None, reasons=[], evidence={})
    rejected = registry.decide(b.id, promote=False, judged_against=a.id, reasons=["psnr: drop"], evidence={"x": 1})
    assert rejected.outcome == REJECTED and rejected.champion_after.id == a.id
    registry.decide(c.id, promote=True, judged_against=a.id, reasons=["ok"], evidence={})
    assert registry.champion("street", "tiny").id == c.id and registry.champion("street", "other") is None
    assert registry.resolve("street/tiny@previous").id == a.id
    assert registry.resolve("street/tiny@latest").id == c.id and registry.resolve("street/tiny@b").id == b.id

    back = registry.rollback("street", "tiny")
    assert back.outcome == ROLLED_BACK and registry.champion("street", "tiny").id == a.id
    assert registry.resolve("street/tiny@previous").id == c.id  # the champion the latest change replaced
    assert (runs / "c" / "model.pt").is_file()  # a rollback moves the pointer, never a file
    with pytest.raises(RegistryError, match="no earlier champion"):
        registry.rollback("street", "tiny")
    by_hand = registry.promote_by_hand("street/tiny@b", "reviewed the videos")
    assert by_hand.outcome == BY_HAND and registry.champion("street", "tiny").id == b.id
    assert registry.rollback("street", "tiny").model.id == a.id
    assert [d.outcome for d in registry.decisions("street")] == [PROMOTED, REJECTED, PROMOTED, ROLLED_BACK, BY_HAND,
                                                                 ROLLED_BACK]

    assert resolve_model_path("street/tiny@champion", runs) == str(runs / "a" / "model.pt")
    assert resolve_model_path(str(runs / "c" / "model.pt"), runs) == str(runs / "c" / "model.pt")  # a path as given
    assert is_reference("street/tiny@champion") and not is_reference("runs/a/model.pt")
    for bad, message in [("street/other@champion", "has no champion yet"), ("street/tiny@zzz", "no registered run 'zzz'"),
                         ("nowhere/tiny@champion", "no model of dataset 'nowhere'")]:
        with pytest.raises(RegistryError, match=message):
            registry.resolve(bad)


def _writer(runs: str, url: str | None, worker: int, champion_id: int, models: int) -> None:
    registry = sync(runs, url)
    for k in range(models):
        model = registry.register(_new(Path(runs), f"w{worker}-{k}", data=f"w{worker}"))
        try:  # every writer challenges the same champion: only one swap may win
            registry.decide(model.id, promote=True, judged_against=champion_id, reasons=["passed"], evidence={})
        except ChampionChanged:
            registry.decide(model.id, promote=False, judged_against=champion_id, reasons=["stale"], evidence={})


def _two_writers(runs: Path, url: str | None) -> None:
    registry = sync(runs, url)
    base = registry.register(_new(runs, "base"))
    registry.decide(base.id, promote=True, judged_against=None, reasons=[], evidence={})
    # fresh interpreters, as separate commands are: a forked writer inherits the test process's threads' locks
    # (Prefect's, the server client's) and one hung for 120 s in a full run
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_writer, args=(str(runs), url, w, base.id, 4)) for w in range(3)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
    assert [p.exitcode for p in writers] == [0, 0, 0]
    models = registry.models("street")
    assert len(models) == 1 + 3 * 4  # nothing lost
    decisions = registry.decisions("street")
    promoted = [d for d in decisions if d.outcome == PROMOTED and d.champion_before and d.champion_before.id == base.id]
    assert len(promoted) == 1  # one challenger of the base champion won, every other one was told it lost
    assert len([d for d in decisions if d.outcome == REJECTED]) == 3 * 4 - 1
    assert registry.champion("street", "tiny").id == promoted[0].model.id


def test_two_writers_at_once_lose_nothing_on_sqlite(tmp_path):
    _two_writers(tmp_path / "runs", None)


def test_two_writers_at_once_lose_nothing_on_postgres(tmp_path, postgres_url):  # noqa: F811 - the fixture
    _two_writers(tmp_path / "runs", postgres_url)
