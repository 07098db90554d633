"""The cluster stack's compose file, validated by the Compose v5 binary (no Docker engine runs here)."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from tests.conftest import ROOT, VENV_BIN


def _config(folder) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "docker-compose"), "-f", str(folder / "docker-compose.yml"), "config"],
                          capture_output=True, text=True, timeout=120, cwd=folder)


def test_compose_file_is_valid_with_an_env_file_and_refuses_to_run_without_secrets(tmp_path):
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    missing = _config(tmp_path)
    assert missing.returncode != 0 and ".env" in missing.stderr  # no password ever comes from the repo
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    done = _config(tmp_path)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert {"postgres", "prefect-server", "prefect-worker", "dask-scheduler", "dask-worker", "ray-head",
            "ray-worker", "review"} <= set(services)
    gpu = services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"] and services["ray-worker"]["shm_size"]
    server = services["prefect-server"]["environment"]
    assert server["PREFECT_SERVER_API_AUTH_STRING"] == "admin:change-me"
    assert server["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://prefect:change-me@postgres")
    review = services["review"]["environment"]  # votes in the stack's Postgres, results published to its Prefect
    assert review["VID2VID_REVIEW_DB_URL"].startswith("postgresql+asyncpg://prefect:change-me@postgres")
    assert review["PREFECT_API_URL"] == "http://prefect-server:4200/api" and services["review"]["ports"]
    assert services["prefect-worker"]["environment"]["VID2VID_REVIEW_URL"] == review["VID2VID_REVIEW_URL"]
    volumes = {v["target"] for s in services.values() for v in s.get("volumes", []) if isinstance(v, dict)}
    assert "/data" in volumes
    assert "password" not in (ROOT / "docker-compose.yml").read_text().lower().replace("postgres_password", "")
