"""The study database in the cluster form's engine: a private PostgreSQL cluster (Debian's postgresql
package) started for the test, the review app on it through asyncpg, as `VID2VID_REVIEW_DB_URL` selects."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from review import study as studies
from review.app import create_app
from review.catalog import Catalog
from review.db import Database
from storage.loopback import free_port
from tests.review.evaluation_tree import make_evaluation

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)


def _as_postgres(*args: str) -> list[str]:
    """Postgres refuses to run as root: run its tools as the package's `postgres` user when we are root."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


@pytest.fixture(scope="module")
def postgres_url():
    if PG_BIN is None or not (PG_BIN / "pg_ctl").is_file():
        pytest.fail("Debian's postgresql package is missing: `make test` installs it (apt-get install -y postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="vid2vid-pg-"))  # not under pytest's root-only tmp: postgres must reach it
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    port = free_port()
    subprocess.run(_as_postgres(str(PG_BIN / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "postgres"),
                   check=True, capture_output=True, timeout=120)
    subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"), "-w",
                                "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"),
                   check=True, capture_output=True, timeout=120)
    try:
        subprocess.run(_as_postgres(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                    "vid2vid"), check=True, capture_output=True, timeout=60)
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/vid2vid"
    finally:
        subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "stop"),
                       capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def test_votes_in_postgres_count_once_and_outlive_the_app(postgres_url, tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    runs_root = tmp_path / "runs"
    make_evaluation(runs_root, "street", ["run-a", "run-b"], ["c0", "c1"], frames=8)

    async def create() -> studies.StudyLinks:
        db = Database(postgres_url)
        try:
            return await studies.create_study(db, Catalog(runs_root), "street", ["run-a", "run-b"], raters=2,
                                              attention_checks=0)
        finally:
            await db.close()

    links = asyncio.run(create())
    study, form = links.study.id, {"content-type": "application/x-www-form-urlencoded"}
    with TestClient(create_app(runs_root, postgres_url), follow_redirects=False) as client:
        for token in links.tokens:
            while 'name="trial" value="' in (page := client.get(f"/s/{study}/r/{token}").text):
                trial = page.split('name="trial" value="')[1].split('"')[0]
                assert client.post(f"/s/{study}/r/{token}/vote", content=f"trial={trial}&side=left",
                                   headers=form).status_code == 303
        repeat = client.post(f"/s/{study}/r/{links.tokens[0]}/vote", content=f"trial={trial}&side=right", headers=form)
        assert repeat.status_code == 303
        assert client.get(f"/s/{study}/r/{links.tokens[0][::-1]}").status_code == 403
    assert not (runs_root / "review").exists()  # nothing went to the SQLite default
    with TestClient(create_app(runs_root, postgres_url)) as client:  # a new app on the same database
        tally = client.get(f"/api/s/{study}/o/{links.owner_token}").json()
    assert (tally["votes"], tally["raters"]) == ("4", "2")
