"""Champion and challenger through the CLI and a real Prefect server, at tiny sizes.

One dataset and one runs root for the module; each fixture is one step of a team's life with the registry
and builds on the one before (so any test alone runs the steps it needs): a first model becomes champion;
the data changes and a retrain with a diverging learning rate is rejected; a run of another config, then a
normal retrain that starts from its own config's champion and is promoted; a rollback; two retrains at once;
the scheduled-retraining deployment through a process worker. The commands run in this process through the
CLI's ``main([...])`` and join the session's Ray head; the two retrains at once are two real processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client

from storage.layout import DatasetLayout
from storage.manifest import merge_records, write_manifest
from storage.registry import PROMOTED, REJECTED, sync
from storage.synthetic import write_synthetic_clip
from tests.conftest import ROOT, VENV_BIN, cli_in_process
from tests.services import stop_process_groups

#: a test run alone builds every step before it (up to seven tiny trainings): more than the suite's 600 s each
pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.timeout(2400)]
CONFIGS = ROOT / "configs" / "model"


@dataclass
class World:
    data: Path
    runs: Path
    gate: Path
    x: Path  # config X (tiny_x): tiny with one generator scale, so two steps train every layer synthesis uses
    worse: Path  # config X with a diverging learning rate: same name, same champion slot
    other: Path  # config Y (tiny_y) on the same data
    ray: str  # the session's Ray head: each training joins it instead of starting a Ray of its own (~15 s each)

    @property
    def layout(self) -> DatasetLayout:
        return DatasetLayout(self.data, "street")

    def add_clip(self, clip: str, seed: int) -> None:
        """The data changes: one more training clip."""
        merge_records(self.layout, [write_synthetic_clip(self.layout, clip, seed, 64, 32, 8, split="train")])

    def command(self, run: str, config: Path, mode: str = "retrain") -> list[str]:
        return ["--data-root", str(self.data), "train", "--dataset", "street", "--runs-root", str(self.runs),
                "--config", str(config), "--workers", "1", "--max-steps", "2", "--checkpoint-every", "2", "--mode",
                mode, "--gate", str(self.gate), "--run-name", run, "--ray-address", self.ray]

    def train(self, run: str, config: Path | None = None, mode: str = "retrain") -> subprocess.CompletedProcess[str]:
        """In this process (the commands' subject is the registry, not process start-up); two retrains at once
        (``concurrent``) are real processes."""
        return cli_in_process(*self.command(run, config or self.x, mode))

    def models(self, *args: str) -> subprocess.CompletedProcess[str]:
        return cli_in_process("models", *args, "--runs-root", str(self.runs))


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    return done.stdout


def _origin(world: World, run: str) -> str:
    return json.loads((world.runs / run / "attempts.jsonl").read_text().splitlines()[0])["origin"]


def _events(name: str) -> list:
    from prefect.events.filters import EventFilter, EventNameFilter

    async def read():
        async with get_client() as client:
            return (await client.read_events(EventFilter(event=EventNameFilter(name=[name])), limit=50)).events
    return asyncio.run(read())


def _event_of(name: str, challenger: str, timeout: float = 60.0) -> list:
    """The ``name`` events for ``challenger``: the command sends them over the events websocket and the server
    persists them a moment later, so they are waited for (up to ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not (found := [e for e in _events(name) if e.payload["challenger"] == challenger]) \
            and time.monotonic() < deadline:
        time.sleep(1)
    return found


def _artifact_versions(key: str) -> list[str]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read():
        async with get_client() as client:
            return [a.data for a in await client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key])))]
    return asyncio.run(read())


@pytest.fixture(scope="module")
def world(tmp_path_factory, ray_head) -> World:
    base = tmp_path_factory.mktemp("champions")
    layout = DatasetLayout(base / "data", "street")
    write_manifest(layout, [write_synthetic_clip(layout, f"c{k}", k, 64, 32, 8, split="train") for k in range(2)]
                   + [write_synthetic_clip(layout, "v0", 50, 64, 32, 8, split="val")])
    gate = base / "gate.yaml"  # the default gate's tolerances; frame FID needs Inception weights the suite lacks
    gate.write_text("name: tests\nrules:\n  psnr: {max_drop: 0.5}\n  warp: {max_ratio: 1.2}\n"
                    "minimums:\n  psnr: {at_least: 8.0}\n")
    tiny = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    x = {**tiny, "name": "tiny_x", "generator": {**tiny["generator"], "n_scales": 1}}
    configs = {"x": x, "worse": {**x, "train": {**x["train"], "lr": 5.0}}, "other": {**x, "name": "tiny_y"}}
    for name, data in configs.items():
        (base / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return World(base / "data", base / "runs", gate, *(base / f"{name}.yaml" for name in configs), ray=ray_head)


@pytest.fixture(scope="module")
def first(world) -> dict[str, str]:
    """A retrain with no champion trains a first model; it meets the minimums and becomes champion. Asked
    again on the same data, there is nothing to retrain."""
    trained = _ok(world.train("A"))
    again = _ok(world.train("A-again"))
    return {"trained": trained, "again": again}


@pytest.fixture(scope="module")
def worse(first, world) -> str:
    world.add_clip("c10", 10)
    return _ok(world.train("worse", world.worse))


@pytest.fixture(scope="module")
def better(worse, world) -> dict[str, str]:
    other = _ok(world.train("Y", world.other, mode="train"))  # the newest run is another config's
    return {"other": other, "better": _ok(world.train("B"))}


@pytest.fixture(scope="module")
def rolled_back(better, world) -> str:
    return _ok(world.models("rollback", "street/tiny_x"))


@pytest.fixture(scope="module")
def concurrent(rolled_back, world) -> list[str]:
    world.add_clip("c11", 11)
    processes = [subprocess.Popen([str(VENV_BIN / "vid2vid"), *world.command(name, world.x)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=os.environ.copy(), cwd=ROOT)
                 for name in ("C1", "C2")]
    outputs = [process.communicate(timeout=900) for process in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-3000:] for _, err in outputs]
    return [out for out, _ in outputs]


def test_a_first_model_becomes_champion_and_unchanged_data_is_not_retrained(first, world):
    assert "registered as street/tiny_x@A" in first["trained"]
    assert "promoted: champion of street/tiny_x is street/tiny_x@A" in first["trained"]
    assert "training unchanged" in first["again"] and "nothing to retrain" in first["again"]
    assert not (world.runs / "A-again").exists()
    assert _origin(world, "A") == "fresh"
    listing = _ok(world.models("list"))
    assert "street/tiny_x@A" in listing and "★" in listing
    shown = _ok(world.models("show", "street/tiny_x"))
    assert shown.splitlines()[0] == "street/tiny_x@A  (champion)"
    model = sync(world.runs).resolve("street/tiny_x@A")
    assert model.model_sha256 in shown and model.data_fingerprint[:16] in shown and "psnr" in model.metrics
    assert model.code_commit != "unknown" and model.protocol and model.evaluation_fingerprint
    assert _event_of("vid2vid.model.promoted", "street/tiny_x@A")


def test_a_worse_retrain_on_changed_data_is_rejected_with_artifact_and_event(worse, world):
    assert "rejected: champion of street/tiny_x is street/tiny_x@A" in worse and "psnr" in worse
    assert _origin(world, "worse").startswith(f"init-from:{world.runs / 'A' / 'model.pt'}")  # from the champion
    assert sync(world.runs).champion("street", "tiny_x").run_name == "A"
    [event] = _event_of("vid2vid.model.rejected", "street/tiny_x@worse")
    assert event.payload["dataset"] == "street" and event.payload["config"] == "tiny_x"
    assert set(event.payload["metrics"]) == {"challenger", "champion"} and "psnr" in event.payload["metrics"]["champion"]
    assert event.resource.id == "vid2vid.model.street.tiny_x"
    [decision] = [v for v in _artifact_versions("model-decision-street-tiny-x") if "`worse`" in v]
    assert decision.startswith("## REJECTED") and "| challenger | `worse` |" in decision and "| champion | `A` |" in decision
    for run in ("worse", "A"):  # both videos of each clip, from the one evaluation
        assert f"/media/evaluations/street/gate-worse/{run}/v0.mp4" in decision
        assert f"/media/evaluations/street/gate-worse/{run}/v0.side_by_side.mp4" in decision


def test_a_retrain_starts_from_its_own_configs_champion_and_a_better_one_is_promoted(better, world):
    assert "registered as street/tiny_y@Y" in better["other"]
    assert sync(world.runs).champion("street", "tiny_y") is None  # a plain `train` registers, never promotes
    assert _origin(world, "B") == f"init-from:{world.runs / 'A' / 'model.pt'} (generator, discriminators)"
    assert "promoted: champion of street/tiny_x is street/tiny_x@B" in better["better"]
    shown = _ok(world.models("show", "street/tiny_x@B")).splitlines()
    chain = [line.strip() for line in shown[shown.index("lineage (this model first, back to the first model):") + 1:]
             if not line.startswith("decision")]
    assert chain[0].startswith("street/tiny_x@B (#") and chain[2].startswith("└─ street/tiny_x@A (#")
    registry = sync(world.runs)
    for line, run in ((chain[1], "B"), (chain[3], "A")):  # each with its data fingerprint and metrics
        model = registry.resolve(f"street/tiny_x@{run}")
        assert f"data {model.data_fingerprint[:16]}" in line and "psnr" in line
    assert registry.resolve("street/tiny_x@B").data_fingerprint != registry.resolve("street/tiny_x@A").data_fingerprint


def test_rollback_brings_the_first_champion_back_and_references_resolve(rolled_back, world, tmp_path, vid2vid):
    assert "rolled back: street/tiny_x@A is the champion of street/tiny_x again (was street/tiny_x@B)" in rolled_back
    assert (world.runs / "B" / "model.pt").is_file()  # nothing deleted
    assert sync(world.runs).champion("street", "tiny_x").run_name == "A"
    synthesized = _ok(vid2vid("--data-root", str(world.data), "synthesize", "--checkpoint", "street/tiny_x@champion",
                              "--runs-root", str(world.runs), "--dataset", "street", "--clip", "v0", "--out",
                              str(tmp_path / "champion.mp4")))
    assert f"street/tiny_x@champion -> {world.runs / 'A' / 'model.pt'}" in synthesized
    assert (tmp_path / "champion.mp4").is_file()
    evaluated = _ok(vid2vid("--data-root", str(world.data), "evaluate", "--dataset", "street", "--runs",
                            "street/tiny_x@champion,street/tiny_x@previous", "--metrics", "psnr", "--runs-root",
                            str(world.runs)))
    assert "│ A " in evaluated and "│ B " in evaluated
    wrong = vid2vid("--data-root", str(world.data), "predict", "--checkpoint", "street/tiny_x@nobody", "--predictor",
                    "p.pt", "--runs-root", str(world.runs), "--dataset", "street", "--clip", "v0", "--out",
                    str(tmp_path / "p.mp4"))
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: street/tiny_x@nobody: no registered run 'nobody'")
    nothing = vid2vid("models", "rollback", "street/tiny_y", "--runs-root", str(world.runs))  # Y was never promoted
    assert nothing.returncode == 2 and "no earlier champion" in nothing.stderr


def test_two_retrains_of_one_dataset_at_once_are_both_registered_and_leave_one_champion(concurrent, world):
    registry = sync(world.runs)
    c1, c2 = (registry.resolve(f"street/tiny_x@{run}") for run in ("C1", "C2"))
    champion = registry.resolve("street/tiny_x@A")
    assert c1.parent_id == c2.parent_id == champion.id  # both challenged the champion they started from
    decisions = {d.model.run_name: d for d in registry.decisions("street", "tiny_x") if d.model.run_name in ("C1", "C2")}
    assert set(decisions) == {"C1", "C2"}
    assert registry.champions("street")[("street", "tiny_x")] in {champion.id, c1.id, c2.id}
    winners = sorted((d for d in decisions.values() if d.outcome == PROMOTED), key=lambda d: d.id)
    # a promotion swaps only the champion it was judged against: two winners are two successive swaps
    # (the second challenged the first after it was promoted), never two over the same champion
    assert len({d.champion_before.id for d in winners}) == len(winners)
    for decision in winners:
        assert decision.evidence["judged_against"] == decision.champion_before.reference
    if winners:
        assert registry.champion("street", "tiny_x").id == winners[-1].model.id


@pytest.fixture
def process_worker(world, tmp_path):
    """The deployments of prefect.yaml and a process worker with the world's roots in its environment."""
    env = {**os.environ, "VID2VID_PROJECT_DIR": str(ROOT), "VID2VID_DATA_ROOT": str(world.data),
           "VID2VID_RUNS_ROOT": str(world.runs), "VID2VID_RAY_ADDRESS": world.ray}
    logs = open(tmp_path / "worker.log", "wb")
    subprocess.run([str(VENV_BIN / "prefect"), "work-pool", "create", "vid2vid-process", "--type", "process",
                    "--overwrite"], env=env, check=True, stdout=logs, stderr=subprocess.STDOUT, timeout=120)
    subprocess.run([str(VENV_BIN / "prefect"), "--no-prompt", "deploy", "--all"], env=env, check=True, cwd=ROOT,
                   stdout=logs, stderr=subprocess.STDOUT, timeout=300)
    worker = subprocess.Popen([str(VENV_BIN / "prefect"), "worker", "start", "--pool", "vid2vid-process", "--type",
                               "process"], env=env, cwd=ROOT, stdout=logs, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        yield tmp_path / "worker.log"
    finally:
        stop_process_groups([worker])
        logs.close()


def test_the_scheduled_retraining_deployment_runs_the_whole_cycle(concurrent, world, process_worker):
    from prefect.deployments import run_deployment

    world.add_clip("c12", 12)
    before = sync(world.runs).champion("street", "tiny_x")
    flow_run = run_deployment("train/scheduled-retraining", timeout=900, parameters={"params": {
        "dataset": "street", "config": str(world.x), "mode": "retrain", "workers": 1, "max_steps": 2,
        "run_name": "nightly", "gate": str(world.gate)}})
    assert flow_run.state.is_completed(), f"{flow_run.state}\n{process_worker.read_text(errors='replace')[-4000:]}"
    registry = sync(world.runs)
    nightly = registry.resolve("street/tiny_x@nightly")
    assert nightly.parent_id == before.id  # fine-tuned from the champion of its config
    [decision] = [d for d in registry.decisions("street", "tiny_x") if d.model.id == nightly.id]
    assert decision.outcome in (PROMOTED, REJECTED) and decision.evidence["rows"]["champion"]
    assert registry.champion("street", "tiny_x").id == (nightly.id if decision.outcome == PROMOTED else before.id)
    # the worker's flow process sends the event over the events websocket; the server persists it a moment later
    found = _event_of(f"vid2vid.model.{decision.outcome}", "street/tiny_x@nightly")
    assert found, f"no vid2vid.model.{decision.outcome} event for street/tiny_x@nightly within 60 s"


def test_the_review_app_shows_the_champion_history_with_both_videos_of_each_decision(rolled_back, world):
    from fastapi.testclient import TestClient

    from review.app import create_app
    from review.settings import database_url

    with TestClient(create_app(world.runs, database_url(world.runs))) as client:
        page = client.get("/models/street")
        assert page.status_code == 200
        html = page.text
        for text in ("rolled back", "rejected", "promoted", "champion A", "challenger worse"):
            assert text in html
        for run in ("A", "worse"):
            assert f'src="/media/evaluations/street/gate-worse/{run}/v0.side_by_side.mp4"' in html
        video = client.get("/media/evaluations/street/gate-worse/worse/v0.side_by_side.mp4")
        assert video.status_code == 200 and len(video.content) > 1000
        assert client.get("/models/nowhere").status_code == 404
        assert "street" in client.get("/models").text
