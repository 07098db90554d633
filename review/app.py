"""The review web app (FastAPI): datasets → evaluations → runs → clips with playable videos, two runs of a
clip synchronised side by side, and the pages of human preference studies.

Every file path that comes from a URL is resolved inside the runs root (``Catalog.media``) or answered 404;
study videos are served by trial and side only, so a rater never sees which run is which. A study's results
and run names are shown only to its owner token (``/s/<study>/o/<owner>``), never on a rater's page.

Every bad request is a 4xx with a short message that names no server path; request bodies are capped.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.templating import Jinja2Templates

from models.metric_display import header
from review import paper
from review import study as studies
from review.catalog import LATEST, Catalog, NotFound
from review.champions import champion_routes
from review.db import Database
from review.publish import Artifact, Publisher, paper_artifact, paper_artifact_key, study_artifact, study_artifact_key
from review.settings import prefect_api_url, prefect_ui_url, review_page, ui_artifact, ui_artifact_versions
from storage.keys import artifact_key

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
MAX_BODY = 16 * 1024  # a vote is a few dozen bytes
MAX_MESSAGE = 300  # an error page never echoes more of what a request sent
_ID = re.compile(r"[0-9]{1,18}")  # database ids: SQLite integers are 64-bit
_KEY = re.compile(r"[a-z0-9-]{1,100}")
OWNER_COOKIE = "vid2vid-owner-"  # + study id: the owner token, so the paper's table may show that study


class TooLarge(ValueError):
    """A request body over ``MAX_BODY``."""


def _artifact_key(*parts: str) -> str:
    return artifact_key(*parts)


def _message(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"


def _id(text: str) -> int:
    if not _ID.fullmatch(text):
        raise NotFound(f"no trial {text[:20]!r}")
    return int(text)


def create_app(runs_root: Path, database_url: str, publish_delay: float = 5.0) -> FastAPI:
    catalog = Catalog(runs_root)
    db = Database(database_url)

    async def compose(dataset: str) -> list[Artifact]:
        results = await studies.results(db, dataset=dataset)
        out = [study_artifact(dataset, results)]
        try:
            table = paper.build(catalog.evaluation(dataset, LATEST), results)
            out.append(paper_artifact(table, review_page("d", dataset, "table")))
        except NotFound:
            pass
        return out

    publisher = Publisher(compose, publish_delay)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await db.create()
        yield
        await publisher.drain()
        await db.close()

    app = FastAPI(title="vid2vid review", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.catalog, app.state.db, app.state.publisher = catalog, db, publisher

    def page(request: Request, template: str, status: int = 200, **context: object) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, template, {"prefect_ui": prefect_ui_url(), "header": header,
                                                              **context}, status_code=status)

    def error(request: Request, status: int, title: str, message: str) -> HTMLResponse:
        return page(request, "error.html", status, title=title, message=_message(message), rater="/r/" in request.url.path)

    @app.middleware("http")
    async def cap_bodies(request: Request, call_next):  # noqa: ANN001, ANN202 - Starlette's middleware signature
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return error(request, 413, "Request too large", f"request bodies are limited to {MAX_BODY} bytes")
        return await call_next(request)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> HTMLResponse:
        return error(request, 404, "Not found", str(exc))

    @app.exception_handler(OSError)  # a file-system refusal caused by the request (e.g. a name too long)
    async def _os_error(request: Request, exc: OSError) -> HTMLResponse:
        return error(request, 404, "Not found", "no such page or file")

    @app.exception_handler(studies.Forbidden)
    async def _forbidden(request: Request, exc: studies.Forbidden) -> HTMLResponse:
        return error(request, 403, "Forbidden", str(exc))

    @app.exception_handler(TooLarge)
    async def _too_large(request: Request, exc: TooLarge) -> HTMLResponse:
        return error(request, 413, "Request too large", str(exc))

    @app.exception_handler(ValueError)
    async def _bad_request(request: Request, exc: ValueError) -> HTMLResponse:
        return error(request, 400, "Bad request", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> HTMLResponse:
        fields = sorted({str(e.get("loc", ("?",))[-1])[:40] for e in exc.errors()})
        return error(request, 400, "Bad request", "missing or invalid: " + ", ".join(fields))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> HTMLResponse:
        return error(request, exc.status_code, "Not found" if exc.status_code == 404 else "Bad request",
                     "no such page" if exc.status_code == 404 else "this request is not accepted here")

    def owned(request: Request) -> set[str]:
        """Study ids whose owner token this browser presented (cookies set by the owner page)."""
        return {k[len(OWNER_COOKIE):] for k in request.cookies if k.startswith(OWNER_COOKIE)}

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
            raise NotFound(f"nothing to review for dataset {dataset[:80]!r}")
        return page(request, "dataset.html", dataset=dataset, evaluations=names, studies=tallies,
                    evaluate_artifact=f"/prefect/artifact/{_artifact_key('evaluate', dataset)}",
                    study_artifact=f"/prefect/artifact/{study_artifact_key(dataset)}",
                    paper_artifact=f"/prefect/artifact/{paper_artifact_key(dataset)}")

    @app.get("/d/{dataset}/table", response_class=HTMLResponse)
    async def paper_page(request: Request, dataset: str, evaluation: str = LATEST) -> HTMLResponse:
        found = catalog.evaluation(dataset, evaluation)
        results = await studies.results(db, dataset=dataset)
        mine = owned(request)
        visible = [r.study.id for r in results if r.study.id in mine
                   and await _owner_ok(r.study, request.cookies.get(OWNER_COOKIE + r.study.id, ""))]
        return page(request, "paper.html", ev=found, table=paper.build(found, results, visible),
                    paper_artifact=f"/prefect/artifact/{paper_artifact_key(dataset)}")

    async def _owner_ok(study: studies.Study, token: str) -> bool:
        try:
            await studies.owned_study(db, study.id, token)
            return True
        except studies.Forbidden:
            return False

    @app.get("/prefect/artifact/{key}")
    async def prefect_artifact(key: str) -> RedirectResponse:
        """The latest version's page in Prefect's new UI (its key page, a list of versions, if Prefect does
        not answer)."""
        if not _KEY.fullmatch(key):
            raise NotFound("no such artifact key")
        import httpx

        try:
            async with httpx.AsyncClient(timeout=5) as client:
                answer = await client.post(prefect_api_url() + "/artifacts/latest/filter",
                                           json={"artifacts": {"key": {"any_": [key]}}, "limit": 1})
                found = answer.json() if answer.status_code == 200 else []
        except (httpx.HTTPError, ValueError):
            found = []
        target = ui_artifact(found[0]["latest_id"]) if found else ui_artifact_versions(key)
        return RedirectResponse(target, status_code=302)

    @app.get("/d/{dataset}/e/{evaluation}", response_class=HTMLResponse)
    async def evaluation_page(request: Request, dataset: str, evaluation: str) -> HTMLResponse:
        found = catalog.evaluation(dataset, evaluation)
        return page(request, "evaluation.html", ev=found,
                    evaluate_artifact=f"/prefect/artifact/{_artifact_key('evaluate', dataset)}",
                    videos_artifact=f"/prefect/artifact/{_artifact_key('evaluate', dataset, 'videos')}")

    @app.get("/d/{dataset}/e/{evaluation}/r/{run}", response_class=HTMLResponse)
    async def run_page(request: Request, dataset: str, evaluation: str, run: str) -> HTMLResponse:
        found = catalog.evaluation(dataset, evaluation)
        return page(request, "run.html", ev=found, entry=found.run(run))

    @app.get("/d/{dataset}/e/{evaluation}/r/{run}/c/{clip}", response_class=HTMLResponse)
    async def clip_page(request: Request, dataset: str, evaluation: str, run: str, clip: str) -> HTMLResponse:
        found = catalog.evaluation(dataset, evaluation)
        entry = found.run(run)
        if clip not in entry.clips:
            raise NotFound(f"run {run[:80]!r} has no clip {clip[:80]!r}")
        return page(request, "clip.html", ev=found, entry=entry, clip=entry.clips[clip])

    @app.get("/d/{dataset}/e/{evaluation}/compare", response_class=HTMLResponse)
    async def compare_page(request: Request, dataset: str, evaluation: str, a: str, b: str, clip: str,
                           view: str = "video") -> HTMLResponse:
        found = catalog.evaluation(dataset, evaluation)
        left, right = found.run(a), found.run(b)
        if clip not in left.clips or clip not in right.clips:
            raise NotFound(f"clip {clip[:80]!r} is not in both runs")
        attribute = "side_by_side" if view == "side_by_side" else "video"
        real = next((e.clips[clip].side_by_side for e in (left, right) if e.clips[clip].side_by_side), None)
        return page(request, "compare.html", ev=found, a=left, b=right, clip=clip, view=attribute,
                    video_a=getattr(left.clips[clip], attribute), video_b=getattr(right.clips[clip], attribute),
                    real=real, names=_method_names(found))

    @app.get("/media/{path:path}")
    async def media(path: str) -> FileResponse:
        file = catalog.media(path)
        if file.relative_to(catalog.root).parts[:1] == ("studies",):  # only through their trial, never by run
            raise NotFound("study videos are served through the study page")
        return FileResponse(file, media_type="video/mp4" if file.suffix == ".mp4" else None)

    # ---- preference studies -------------------------------------------------------------------------
    @app.get("/s/{study_id}", response_class=HTMLResponse)
    @app.get("/api/s/{study_id}")
    async def study_results_without_token(request: Request, study_id: str) -> HTMLResponse:
        raise studies.Forbidden("a study's results open only with its owner link (printed by `vid2vid study create`)")

    async def owner_results(study_id: str, owner: str) -> studies.StudyResult:
        await studies.owned_study(db, study_id, owner)
        return (await studies.results(db, study_id=study_id))[0]

    @app.get("/s/{study_id}/o/{owner}", response_class=HTMLResponse)
    async def study_results_page(request: Request, study_id: str, owner: str) -> HTMLResponse:
        result = await owner_results(study_id, owner)
        response = page(request, "results.html", result=result, row=result.row(),
                        study_artifact=f"/prefect/artifact/{study_artifact_key(result.study.dataset)}",
                        publishing=publisher.enabled)
        response.set_cookie(OWNER_COOKIE + study_id, owner, httponly=True, samesite="strict", path="/")
        return response

    @app.get("/api/s/{study_id}/o/{owner}")
    async def study_results_json(study_id: str, owner: str) -> JSONResponse:
        result = await owner_results(study_id, owner)
        return JSONResponse({"votes_a": result.votes_a, **result.row()})

    @app.get("/s/{study_id}/r/{token}", response_class=HTMLResponse)
    async def rater_page(request: Request, study_id: str, token: str) -> HTMLResponse:
        study, rater = await studies.rater_of(db, study_id, token)
        order, voted = await studies.rater_state(db, study, rater)
        pending = [s for s in order if s.trial.id not in voted]
        return page(request, "trial.html", study=study, token=token, shown=pending[0] if pending else None,
                    number=len(order) - len(pending) + 1, total=len(order))

    @app.get("/s/{study_id}/r/{token}/v/{trial}/{side}")
    async def trial_video(study_id: str, token: str, trial: str, side: str) -> FileResponse:
        study, rater = await studies.rater_of(db, study_id, token)
        order, _ = await studies.rater_state(db, study, rater)
        trial_id = _id(trial)
        shown = next((s for s in order if s.trial.id == trial_id), None)
        if shown is None or side not in ("left", "right"):
            raise NotFound(f"no trial {trial_id} / {side[:20]!r} in this study")
        return FileResponse(catalog.media(shown.left_video if side == "left" else shown.right_video),
                            media_type="video/mp4")

    @app.post("/s/{study_id}/r/{token}/vote")
    async def vote(request: Request, study_id: str, token: str) -> Response:
        body = bytearray()
        async for chunk in request.stream():  # capped while read: a body without Content-Length too
            body += chunk
            if len(body) > MAX_BODY:
                raise TooLarge(f"request bodies are limited to {MAX_BODY} bytes")
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        if not _ID.fullmatch(form.get("trial", "")):
            raise ValueError("the vote names no trial (a number)")
        trial_id = int(form["trial"])
        study, _ = await studies.record_vote(db, study_id, token, trial_id, form.get("side", ""))
        publisher.notify(study.dataset)
        return RedirectResponse(f"/s/{study_id}/r/{token}", status_code=303)

    return app


def _method_names(evaluation) -> dict[str, str]:  # noqa: ANN001 - review.catalog.Evaluation
    """Run -> the method it is in the paper's table (role, with the run when a role repeats)."""
    return {m.run: m.name for m in paper.build(evaluation, []).methods if m.run}
