"""The paper's Table 1 for one dataset: methods as rows (named by role: vid2vid, frame-by-frame baseline,
reference model, real), the evaluation's metrics and the human preference against each other method as
columns. Every cell names its source (which evaluation, which study) and flags values it cannot vouch for
(weights missing, unverified or mismatched, with where to get them).

One builder for both the review-app page and the Prefect artifact, so both show the same numbers with the
same rounding (``models.metric_display``). No Prefect import here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from models.metric_display import LABELLED, cell, header
from models.metrics.names import SPECS
from models.metric_display import markdown_text as md
from review.catalog import Evaluation
from review.stats import wilson_interval
from review.study import StudyResult

METRIC_COLUMNS = [spec.name for spec in SPECS]  # the paper table's columns, in the metric table's order
REAL = "real"
BASELINE = "frame-by-frame baseline"
REFERENCE = "reference model"
_WEIGHTS = {spec.name: spec.weights for spec in SPECS if spec.weights}  # metric -> its weights entry


@dataclass(frozen=True)
class Cell:
    text: str
    source: str  # where the value comes from: "evaluation latest (2026-12-03 08:00), run X" / "study S"
    flag: str = ""  # what is wrong with it, and how to fix it ("" when nothing)


@dataclass
class Method:
    name: str  # the role, e.g. "vid2vid", "frame-by-frame baseline", "real"
    run: str  # "" for the real row
    cells: dict[str, Cell] = field(default_factory=dict)  # column key -> cell


@dataclass
class PaperTable:
    dataset: str
    evaluation: str
    columns: list[tuple[str, str]]  # (key, header)
    methods: list[Method]
    hidden_studies: int = 0  # studies whose results this viewer may not see (no owner token)

    def sources(self) -> list[str]:
        """Every distinct source, numbered in order of first use (the footnotes)."""
        seen: dict[str, None] = {}
        for method in self.methods:
            for key, _ in self.columns:
                if key in method.cells and method.cells[key].source:
                    seen.setdefault(method.cells[key].source)
        return list(seen)

    def flags(self) -> list[str]:
        seen: dict[str, None] = {}
        for method in self.methods:
            for c in method.cells.values():
                if c.flag:
                    seen.setdefault(c.flag)
        return list(seen)

    def marker(self, c: Cell) -> str:
        """The cell's footnote markers: [n] for its source, ⚠n for its flag."""
        out = f"[{self.sources().index(c.source) + 1}]" if c.source else ""
        return out + (f" ⚠{self.flags().index(c.flag) + 1}" if c.flag else "")


def role(item: dict) -> str:
    """What a run is in the table: a shipped reference model, the baseline, or vid2vid (ablations by name)."""
    path = f"{item.get('model_path', '')}/{item.get('run', '')}".lower()
    if "reference" in path or "/shipped/" in path:
        return REFERENCE
    return item.get("variant") or "vid2vid"


@lru_cache(maxsize=8)
def where_to_get(metric: str) -> str:
    """The weights file a FID needs and where it comes from (models.weights; loaded only when a flag needs it)."""
    from models.weights import get_spec

    spec = get_spec(_WEIGHTS[metric])
    return f"{spec.filename} from {spec.url} into the weights folder (`vid2vid weights` lists them)"


def _flag(metric: str, value: float | str) -> str:
    if metric not in _WEIGHTS or not isinstance(value, str):
        return ""
    name = header(metric).rstrip(" ↓↑")
    if LABELLED.fullmatch(value):
        return f"{name}: unverified weights (no registered checksum) — the expected file is {where_to_get(metric)}"
    for problem in ("weights missing", "checksum mismatch", "wrong key layout", "weights unusable"):
        if problem in value:
            return f"{name}: {problem} — get {where_to_get(metric)}"
    return ""


def _stamp(evaluation: Evaluation, run: str) -> str:
    row = next((r for r in evaluation.table if r.get("run") == run), None)
    return row.get("evaluated", "") if row else ""


def build(evaluation: Evaluation, results: Sequence[StudyResult], visible: Iterable[str] | None = None) -> PaperTable:
    """The table for ``evaluation``; preference only from the studies in ``visible`` (ids; None: all)."""
    allowed = None if visible is None else set(visible)
    items = list(evaluation.data.get("evaluations", []))
    names: dict[str, str] = {}  # run -> method name (the role; with the run when a role repeats)
    counts = defaultdict(int)
    for item in items:
        counts[role(item)] += 1
    for item in items:
        name = role(item)
        names[item["run"]] = name if counts[name] == 1 else f"{name} ({item['run']})"
    order = {BASELINE: 0, REFERENCE: 2}
    items.sort(key=lambda i: (order.get(role(i), 1 if role(i) != "vid2vid" else 3), i["run"]))

    methods: list[Method] = []
    for item in items:
        run, stamp = item["run"], _stamp(evaluation, item["run"])
        source = f"evaluation {evaluation.name}{f' ({stamp})' if stamp else ''}, run {run}"
        method = Method(names[run], run)
        for metric in METRIC_COLUMNS:
            if metric in item.get("values", {}):
                value = item["values"][metric]
                method.cells[metric] = Cell(cell(metric, value, item.get("details", {}).get(metric)), source,
                                            _flag(metric, value))
            else:
                method.cells[metric] = Cell("n/a", f"evaluation {evaluation.name} did not compute {header(metric)}")
        methods.append(method)
    references = items[0].get("references", {}) if items else {}
    real = Method(REAL, "")
    for metric in METRIC_COLUMNS:
        if metric in references:
            what = ("real clips under the same flows" if metric == "warp_error"
                    else "real validation vs real training frames")
            real.cells[metric] = Cell(cell(metric, references[metric]), f"evaluation {evaluation.name}: {what}",
                                      _flag(metric, references[metric]))
        else:
            real.cells[metric] = Cell("—", "")  # PSNR/SSIM of the real video against itself say nothing
    methods.append(real)

    # preference: per ordered pair of methods, votes pooled over every visible study of those two runs
    wins: dict[tuple[str, str], int] = defaultdict(int)
    totals: dict[tuple[str, str], int] = defaultdict(int)
    sources: dict[tuple[str, str], list[str]] = defaultdict(list)
    hidden = 0
    for result in results:
        study = result.study
        if study.run_a not in names or study.run_b not in names:
            continue
        if allowed is not None and study.id not in allowed:
            hidden += 1
            continue
        a, b = names[study.run_a], names[study.run_b]
        for x, y, won in ((a, b, result.votes_a), (b, a, result.votes - result.votes_a)):
            wins[x, y] += won
            totals[x, y] += result.votes
            sources[x, y].append(f"study {study.id} ({study.kind} sequences, evaluation {study.evaluation})")
    opponents = sorted({y for _, y in totals}, key=lambda n: [m.name for m in methods].index(n))
    columns = [(m, header(m)) for m in METRIC_COLUMNS]
    for other in opponents:
        key = f"pref:{other}"
        columns.append((key, f"preferred over {other} ↑"))
        for method in methods:
            pair = (method.name, other)
            if totals.get(pair):
                low, high = wilson_interval(wins[pair], totals[pair])
                text = f"{wins[pair] / totals[pair]:.2f} [{low:.2f}, {high:.2f}], {totals[pair]} votes"
                method.cells[key] = Cell(text, "; ".join(sources[pair]))
            elif totals.get((other, method.name)) is not None and method.name != other:
                method.cells[key] = Cell("no votes yet", "; ".join(sources[other, method.name]))
            else:
                method.cells[key] = Cell("—", "")
    if not opponents:
        columns.append(("pref", "human preference ↑"))
        for method in methods:
            method.cells["pref"] = Cell("hidden: open a study's owner link" if hidden else "no study yet", "")
    return PaperTable(evaluation.dataset, evaluation.name, columns, methods, hidden)


def markdown(table: PaperTable, review_link: str) -> str:
    """The artifact: the table, then its sources and flags as numbered notes."""
    metrics = [(k, h) for k, h in table.columns if not k.startswith("pref")]
    opponents = [(k, k.removeprefix("pref:")) for k, _ in table.columns if k.startswith("pref:")]
    lines = [f"### {md(table.dataset)}: the paper's table (evaluation {md(table.evaluation)})", "",
             "| method | " + " | ".join(md(h) for _, h in metrics) + " | human preference ↑ |",
             "|" + "---|" * (len(metrics) + 2)]
    for method in table.methods:
        cells = [f"{md(method.cells[k].text)} {md(table.marker(method.cells[k]))}".strip() for k, _ in metrics]
        # one preference column (the UI's artifact pane is ~580 px wide): "vs <method>: share [CI], votes" each
        against = [f"vs {md(other)}: {md(method.cells[k].text)} {md(table.marker(method.cells[k]))}".strip()
                   for k, other in opponents if method.cells[k].text != "—"]
        pref = "; ".join(against) if opponents else md(method.cells["pref"].text)
        lines.append(f"| {md(method.name)} | " + " | ".join(cells) + f" | {pref or '—'} |")
    lines += ["", "Human preference: share of votes for the row's method against the column's (\"which video looks "
              "more real?\"), its 95 % Wilson interval, and the counted votes.", "", "Sources:", ""]
    lines += [f"{i}. {md(s)}" for i, s in enumerate(table.sources(), 1)]
    if table.flags():
        lines += ["", "Flags:", ""] + [f"- ⚠{i} {md(f)}" for i, f in enumerate(table.flags(), 1)]
    lines += ["", f"[Open it in the review app]({review_link})"]
    return "\n".join(lines)
