"""What the `vid2vid review` and `vid2vid study` subcommands do (the CLI only parses arguments)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from review import study as studies
from review.catalog import LATEST, Catalog
from review.db import Database
from review.settings import database_url, review_page, review_url

T = TypeVar("T")


def _with_db(runs_root: Path, db_url: str | None, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        db = Database(database_url(runs_root, db_url))
        try:
            await db.create()
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(run())


def serve(runs_root: Path, host: str, port: int, db_url: str | None = None) -> int:
    import uvicorn

    from review.app import create_app

    url = database_url(runs_root, db_url)
    print(f"review app for {Path(runs_root).resolve()} at http://{host}:{port} (votes: {url.split('://')[0]}; "
          f"links from Prefect artifacts point to {review_url()})", flush=True)
    uvicorn.run(create_app(runs_root, url), host=host, port=port, log_level="warning")
    return 0


def create_study(runs_root: Path, dataset: str, runs: list[str], clips: int | None, kind: str,
                 evaluation: str = LATEST, raters: int = 1, attention_checks: int | None = None,
                 db_url: str | None = None) -> studies.StudyLinks:
    links = _with_db(runs_root, db_url, lambda db: studies.create_study(
        db, Catalog(runs_root), dataset, runs, clips, kind, evaluation, raters, attention_checks))
    study = links.study
    print(f"study {study.id}: {study.run_a} (A) vs {study.run_b} (B) on {dataset}, {kind} sequences, "
          f"{links.trials} trial(s) + {links.attention_checks} attention check(s)")
    for token in links.tokens:
        print(f"rater link: {review_page('s', study.id, 'r', token)}")
    print(f"owner link (results and run names; keep it private): {review_page('s', study.id, 'o', links.owner_token)}")
    print(f"results here: vid2vid study results --study {study.id}")
    return links


def add_raters(runs_root: Path, study_id: str, count: int, db_url: str | None = None) -> list[str]:
    tokens = _with_db(runs_root, db_url, lambda db: studies.add_raters(db, study_id, count))
    for token in tokens:
        print(f"rater link: {review_page('s', study_id, 'r', token)}")
    return tokens


def show_results(runs_root: Path, dataset: str | None, study_id: str | None, publish: bool = True,
                 db_url: str | None = None) -> list[dict[str, str]]:
    """The tallies as table rows; publishes the Prefect table artifact of each dataset involved (all of
    that dataset's studies, so ablations stand side by side) unless told not to."""
    from review import paper
    from review.publish import paper_artifact, paper_artifact_key, publish_results, upsert

    found = _with_db(runs_root, db_url, lambda db: studies.results(db, dataset=dataset, study_id=study_id))
    if study_id and not found:
        raise FileNotFoundError(f"no study {study_id!r}")
    if publish:
        for name in sorted({r.study.dataset for r in found}):
            everyone = _with_db(runs_root, db_url, lambda db: studies.results(db, dataset=name))  # noqa: B023
            print(f"Prefect artifact: {publish_results(name, everyone)}")
            try:
                evaluation = Catalog(runs_root).evaluation(name, LATEST)
            except FileNotFoundError:
                continue  # studies of an evaluation that is gone: no table to put them in
            upsert(paper_artifact(paper.build(evaluation, everyone), review_page("d", name, "table")))
            print(f"Prefect artifact: {paper_artifact_key(name)}")
    return [{"dataset": r.study.dataset, **r.row()} for r in found]


def paper_markdown(runs_root: Path, dataset: str, db_url: str | None = None) -> str | None:
    """The paper's table of the dataset's latest evaluation with every study of it, as the artifact's markdown;
    None when there is no evaluation. Safe to call from a flow (the database is read on its own thread)."""
    from concurrent.futures import ThreadPoolExecutor

    from review import paper
    from review.catalog import NotFound

    try:
        evaluation = Catalog(runs_root).evaluation(dataset, LATEST)
    except NotFound:
        return None
    with ThreadPoolExecutor(1) as pool:
        results = pool.submit(_with_db, runs_root, db_url, lambda db: studies.results(db, dataset=dataset)).result()
    return paper.markdown(paper.build(evaluation, results), review_page("d", dataset, "table"))
