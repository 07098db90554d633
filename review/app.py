"""The review web app (FastAPI): datasets → evaluations → runs → clips with playable videos, two runs of a
clip synchronised side by side, and the pages of human preference studies.

Every file path that comes from a URL is resolved inside the runs root (``Catalog.media``) or answered 404;
study videos are served by trial and side only, so a rater never sees which run is which.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from review import study as studies
from review.catalog import Catalog, NotFound
from review.champions import champion_routes
from review.db import Database
from review.publish import Publisher, study_artifact_key
from review.settings import artifact_url, prefect_ui_url
from tasks.artifacts import artifact_key

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def create_app(runs_root: Path, database_url: str, publish_delay: float = 1.0) -> FastAPI:
    catalog = Catalog(runs_root)
    db = Database(database_url)

    async def tally(dataset: str) -> list[studies.StudyResult]:
        return await studies.results(db, dataset=dataset)

    publisher = Publisher(tally, publish_delay)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await db.create()
        yield
        await publisher.drain()
        await db.close()

    app = FastAPI(title="vid2vid review", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.catalog, app.state.db, app.state.publisher = catalog, db, publisher

    def page(request: Request, template: str, status: int = 200, **context: object) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, template, {"prefect_ui": prefect_ui_url(), **context},
                                          status_code=status)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> HTMLResponse:
        return page(request, "error.html", 404, title="Not found", message=str(exc))

    @app.exception_handler(studies.Forbidden)
    async def _forbidden(request: Request, exc: studies.Forbidden) -> HTMLResponse:
        return page(request, "error.html", 403, title="Forbidden", message=str(exc))

    @app.exception_handler(ValueError)
    async def _bad_request(request: Request, exc: ValueError) -> HTMLResponse:
        return page(request, "error.html", 400, title="Bad request", message=str(exc))

    app.include_router(champion_routes(runs_root, database_url, page))  # /models: the registry's champion history

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request) -> HTMLResponse:
        all_studies = await studies.results(db)
        return page(request, "index.html", datasets=catalog.datasets(), studies=all_studies)

    @app.get("/d/{dataset}", response_class=HTMLResponse)
    async def dataset_page(request: Request, dataset: str) -> HTMLResponse:
        tallies = await studies.results(db, dataset=dataset)
        names = catalog.evaluations(dataset) if dataset in catalog.datasets() else []
        if not names and not tallies:
            raise NotFound(f"nothing to review for dataset {dataset!r}")
        return page(request, "dataset.html", dataset=dataset, evaluations=names, studies=tallies,
                    evaluate_artifact=artifact_url(artifact_key("evaluate", dataset)),
                    study_artifact=artifact_url(study_artifact_key(dataset)))

    @app.get("/d/{dataset}/e/{evaluation}", response_class=HTMLResponse)
    async def evaluation_page(request: Request, dataset: str, evaluation: str) -> HTMLResponse:
        found = catalog.evaluation(dataset, evaluation)
        return page(request, "evaluation.html", ev=found,
                    evaluate_artifact=artifact_url(artifact_key("evaluate", dataset)),
                    videos_artifact=artifact_url(artifact_key("evaluate", dataset, "videos")))

    @app.get("/d/{dataset}/e/{evaluation}/r/{run}", response_class=HTMLResponse)
    async def run_page(request: Request, dataset: str, evaluation: str, run: str) -> HTMLResponse:
        found = catalog.evaluation(dataset, evaluation)
        return page(request, "run.html", ev=found, entry=found.run(run))

    @app.get("/d/{dataset}/e/{evaluation}/r/{run}/c/{clip}", response_class=HTMLResponse)
    async def clip_page(request: Request, dataset: str, evaluation: str, run: str, clip: str) -> HTMLResponse:
        found = catalog.evaluation(dataset, evaluation)
        entry = found.run(run)
        if clip not in entry.clips:
            raise NotFound(f"run {run!r} has no clip {clip!r}")
        return page(request, "clip.html", ev=found, entry=entry, clip=entry.clips[clip])

    @app.get("/d/{dataset}/e/{evaluation}/compare", response_class=HTMLResponse)
    async def compare_page(request: Request, dataset: str, evaluation: str, a: str, b: str, clip: str,
                           view: str = "video") -> HTMLResponse:
        found = catalog.evaluation(dataset, evaluation)
        left, right = found.run(a), found.run(b)
        if clip not in left.clips or clip not in right.clips:
            raise NotFound(f"clip {clip!r} is not in both runs")
        attribute = "side_by_side" if view == "side_by_side" else "video"
        return page(request, "compare.html", ev=found, a=left, b=right, clip=clip, view=attribute,
                    video_a=getattr(left.clips[clip], attribute), video_b=getattr(right.clips[clip], attribute))

    @app.get("/media/{path:path}")
    async def media(path: str) -> FileResponse:
        file = catalog.media(path)
        if file.relative_to(catalog.root).parts[:1] == ("studies",):  # only through their trial, never by run
            raise NotFound("study videos are served through the study page")
        return FileResponse(file, media_type="video/mp4" if file.suffix == ".mp4" else None)

    # ---- preference studies -------------------------------------------------------------------------
    @app.get("/s/{study_id}", response_class=HTMLResponse)
    async def study_results_page(request: Request, study_id: str) -> HTMLResponse:
        found = await studies.results(db, study_id=study_id)
        if not found:
            raise NotFound(f"no study {study_id!r}")
        return page(request, "results.html", result=found[0], row=found[0].row(),
                    study_artifact=artifact_url(study_artifact_key(found[0].study.dataset)),
                    publishing=publisher.enabled)

    @app.get("/api/s/{study_id}")
    async def study_results_json(study_id: str) -> JSONResponse:
        found = await studies.results(db, study_id=study_id)
        if not found:
            raise NotFound(f"no study {study_id!r}")
        return JSONResponse({"votes_a": found[0].votes_a, **found[0].row()})

    @app.get("/s/{study_id}/r/{token}", response_class=HTMLResponse)
    async def rater_page(request: Request, study_id: str, token: str) -> HTMLResponse:
        study, rater = await studies.rater_of(db, study_id, token)
        order, voted = await studies.rater_state(db, study, rater)
        pending = [s for s in order if s.trial.id not in voted]
        return page(request, "trial.html", study=study, token=token, shown=pending[0] if pending else None,
                    number=len(order) - len(pending) + 1, total=len(order))

    @app.get("/s/{study_id}/r/{token}/v/{trial_id}/{side}")
    async def trial_video(study_id: str, token: str, trial_id: int, side: str) -> FileResponse:
        study, rater = await studies.rater_of(db, study_id, token)
        order, _ = await studies.rater_state(db, study, rater)
        shown = next((s for s in order if s.trial.id == trial_id), None)
        if shown is None or side not in ("left", "right"):
            raise NotFound(f"no trial {trial_id} / {side} in this study")
        return FileResponse(catalog.media(shown.left_video if side == "left" else shown.right_video),
                            media_type="video/mp4")

    @app.post("/s/{study_id}/r/{token}/vote")
    async def vote(request: Request, study_id: str, token: str) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        try:
            trial_id = int(form.get("trial", ""))
        except ValueError:
            raise ValueError("the vote names no trial") from None
        study, _ = await studies.record_vote(db, study_id, token, trial_id, form.get("side", ""))
        publisher.notify(study.dataset)
        return RedirectResponse(f"/s/{study_id}/r/{token}", status_code=303)

    return app
