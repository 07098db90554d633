"""Flow-run names that say what ran, and tags to filter by, so the Prefect UI's run list tells the story.

Each ``@flow`` passes ``flow_run_name=run_name("train", describe, tag)``: Prefect calls it inside the new
run's context, with its parameters, before the body runs. ``describe(params)`` is the rest of the name
("street tiny-first"); ``tag(params)`` the tags ("dataset:street", "config:tiny", "run:first"), added to
the run through the same client (Prefect's ``tags`` context only reaches runs created inside it). Flows
without a ``params`` model name their runs with ``templated("demo {steps} steps")``.

Every name hook also claims its run for the CLI command running it (``flows.server.claim_flow_run``: the
``vid2vid.process`` label by which a dead command's runs are marked Crashed); a test checks that every flow
names its runs through this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from prefect.context import FlowRunContext
from pydantic import BaseModel

from flows.server import claim_flow_run

M = TypeVar("M", bound=BaseModel)


def run_name(kind: str, model: type[M], describe: Callable[[M], str],
             tag: Callable[[M], Iterable[str]] | None = None) -> Callable[[], str]:
    """The ``flow_run_name`` of a flow whose one parameter ``params`` is a ``model``."""

    def name() -> str:
        context = _claimed_context()
        params = (context.parameters or {}).get("params") if context else None
        try:
            params = model.model_validate(params) if isinstance(params, dict) else params
        except ValueError:  # the body reports bad parameters; the name stays plain
            return kind
        if not isinstance(params, model):
            return kind
        if tag is not None and context.client is not None:
            tags = sorted(set(context.flow_run.tags or []) | {t for t in tag(params) if t})
            context.client.update_flow_run(context.flow_run.id, tags=tags)
            context.flow_run.tags = tags
        return f"{kind} {describe(params)}".strip()

    name.claims_run = True  # type: ignore[attr-defined]
    return name


def templated(template: str) -> Callable[[], str]:
    """The ``flow_run_name`` of a flow with plain parameters: ``template`` formatted with them."""

    def name() -> str:
        context = _claimed_context()
        try:
            return template.format(**(context.parameters or {})) if context else template
        except (KeyError, IndexError, ValueError):
            return template

    name.claims_run = True  # type: ignore[attr-defined]
    return name


def _claimed_context() -> FlowRunContext | None:
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None and context.client is not None:
        claim_flow_run(context.flow_run.id, context.client)
    return context


def dataset_tag(params: BaseModel) -> list[str]:
    dataset = getattr(params, "dataset", None)
    return [f"dataset:{dataset}"] if dataset else []
