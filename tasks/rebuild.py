"""The full rebuild's own artifact: what each step did, with links to the artifact versions it made."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.metric_display import header
from tasks.artifacts import artifact_key, md_text, publish_markdown, version_link


def rebuild_summary(dataset: str, data_root: str, ingested, stages: list[str], preprocessed, trained,  # noqa: ANN001
                    table: list[dict[str, str]], kept_evaluation: bool, keys: list[str]) -> str:
    """Markdown: data, preprocessing, training and evaluation of one rebuild (the step results as the sub-flows
    return them), then its artifacts."""
    return "\n".join([
        f"## Full rebuild of `{dataset}`", "",
        f"- **data**: {ingested.clips_ok} clip(s), {ingested.frames} frames under `{Path(data_root) / dataset}`; "
        f"{len(ingested.quarantined)} quarantined" + "".join(f"\n  - `{c}`: {r}" for c, r in ingested.quarantined.items()),
        f"- **preprocess**: stages {', '.join(stages)}; {len(preprocessed.quarantined)} clip(s) quarantined "
        f"(artifact `{preprocessed.artifact_key}`)",
        f"- **train**: {trained.status}: {trained.message}",
        f"- **evaluate**: {'kept the earlier evaluation' if kept_evaluation else 'evaluated'}: "
        + ", ".join(f"{header(k)} = {md_text(v)}" for k, v in (table[0] if table else {}).items()
                    if k not in ("run", "evaluated", "config", "data")),
        "", "Artifacts of each step (the versions this rebuild made): "
        + ", ".join(f"[{k}]({version_link(k)})" for k in keys),
    ])


@task(name="publish-rebuild-summary", cache_policy=NO_CACHE)
def publish_rebuild_task(dataset: str, data_root: str, ingested, stages: list[str], preprocessed, trained,  # noqa: ANN001
                         table: list[dict[str, str]], kept_evaluation: bool, keys: list[str]) -> str:
    return publish_markdown(artifact_key("rebuild", dataset), rebuild_summary(
        dataset, data_root, ingested, stages, preprocessed, trained, table, kept_evaluation, keys),
        "what the full rebuild did")
