"""The champion history of each dataset: every decision of the model registry (promoted, rejected, rolled back,
promoted by hand), newest first, with both models' rows of the one evaluation and their side-by-side videos.

Reads the registry (storage/registry.py) in the app's database; videos are served by the app's /media route.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from review.catalog import NotFound
from storage.layout import check_name
from storage.registry import Decision, Registry


def _row(decision: Decision) -> dict:
    """What the page shows of one decision."""
    evidence = decision.evidence
    rows = evidence.get("rows", {})
    metrics = sorted({k for row in rows.values() for k in row})
    return {"decision": decision, "rows": rows, "metrics": metrics, "videos": evidence.get("videos", []),
            "checks": evidence.get("checks", []), "gate": evidence.get("gate", {}).get("name"),
            "evaluation": evidence.get("evaluation"), "protocol": evidence.get("protocol"),
            "data": evidence.get("evaluation_data")}


def champion_routes(runs_root: Path, database_url: str, page: Callable[..., HTMLResponse]) -> APIRouter:
    router = APIRouter()

    async def read(dataset: str | None) -> tuple[dict, list[Decision], dict]:
        registry = Registry(runs_root, database_url)
        try:
            await registry.create()
            champions = await registry.champions(dataset)
            decisions = await registry.decisions(dataset)
            models = {m.id: m for m in await registry.models(dataset)}
        finally:
            await registry.close()
        return champions, decisions, models

    @router.get("/models", response_class=HTMLResponse)
    async def all_champions(request: Request) -> HTMLResponse:
        champions, decisions, models = await read(None)
        datasets = sorted({m.dataset for m in models.values()})
        return page(request, "champions.html", dataset=None, datasets=datasets, decisions=[],
                    champions={k: models[v] for k, v in champions.items()})

    @router.get("/models/{dataset}", response_class=HTMLResponse)
    async def dataset_champions(request: Request, dataset: str) -> HTMLResponse:
        check_name(dataset, "dataset")
        champions, decisions, models = await read(dataset)
        if not models:
            raise NotFound(f"no model of dataset {dataset!r} is registered")
        return page(request, "champions.html", dataset=dataset, datasets=[dataset],
                    champions={k: models[v] for k, v in champions.items()},
                    decisions=[_row(d) for d in reversed(decisions)])

    return router
