"""Human preference studies (the paper's Tables 1-3): create one, show a rater their trials, record votes,
tally the results.

The study's owner holds a third token (printed once by ``study create``, stored only as its sha256): the
results and the run names behind A and B are shown to that token alone, never on a rater's page.

Attention checks (real vs visibly broken video) are on by default, at least one per ten trials. Their files
are named like every other study video (random hex), encoded by the same encoder and padded to the same
size, and their trial ids are interleaved with the real ones, so nothing but the pictures tells them apart.

A rater is identified by an unguessable link token (``secrets.token_urlsafe``) looked up in the database
together with the study it belongs to. Each rater sees the trials in their own shuffled order with the two
runs on sides drawn per trial; both follow from the rater's stored seed, so the page and the vote handler
agree without the browser ever being trusted with which side is which run.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import re
import secrets
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from review.catalog import LATEST, Catalog, NotFound, RunEntry
from review.db import Database, Rater, Study, Trial, Vote
from review.media import attention_pair, pad_to_common_size, snapshot
from review.stats import wilson_interval

KINDS = {"short": 30, "long": None}  # frames shown: the paper's short sequences vs whole clips
QUESTION = "Which video looks more like a real video?"


class Forbidden(PermissionError):
    """A token that is not a rater of this study."""


@dataclass(frozen=True)
class StudyLinks:
    study: Study
    trials: int
    attention_checks: int
    tokens: list[str]
    owner_token: str = ""


@dataclass(frozen=True)
class Shown:
    """One trial as a rater sees it: which video is left and which is right."""

    trial: Trial
    left: str  # "a" | "b"

    @property
    def left_video(self) -> str:
        return self.trial.video_a if self.left == "a" else self.trial.video_b

    @property
    def right_video(self) -> str:
        return self.trial.video_b if self.left == "a" else self.trial.video_a


def rater_order(seed: int, trials: list[Trial]) -> list[Shown]:
    """The rater's own trial order and sides: a shuffle and one coin per trial, from the rater's seed."""
    ordered = sorted(trials, key=lambda t: t.id)
    rng = random.Random(seed)
    rng.shuffle(ordered)
    return [Shown(t, "a" if random.Random(f"{seed}:{t.id}").random() < 0.5 else "b") for t in ordered]


def _study_id(dataset: str) -> str:
    """Opaque apart from the dataset: the id is in every rater URL, and run names there would unblind raters."""
    return f"{re.sub(r'[^a-z0-9]+', '-', dataset.lower()).strip('-')[:40]}-{secrets.token_hex(4)}"


def _new_rater(study_id: str, label: str) -> Rater:
    return Rater(study_id=study_id, token=secrets.token_urlsafe(24), seed=secrets.randbelow(2**31), label=label)


def default_attention_checks(trials: int) -> int:
    """At least one check per ten trials shown: k >= (trials + k) / 10, i.e. k >= trials / 9, and never 0."""
    return max(1, math.ceil(trials / 9))


def owner_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_study(db: Database, catalog: Catalog, dataset: str, runs: list[str], clips: int | None = None,
                       kind: str = "short", evaluation: str = LATEST, raters: int = 1,
                       attention_checks: int | None = None) -> StudyLinks:
    """A study of run A against run B on ``clips`` clips of an evaluation, with ``raters`` rater links.

    The videos are copied under ``<runs_root>/studies/<id>/`` first, so a later evaluation cannot change what
    raters see; nothing is written to the database unless every video was prepared.
    """
    if len(runs) != 2 or runs[0] == runs[1]:
        raise ValueError(f"a study compares two different runs (--runs A,B), got {runs}")
    if kind not in KINDS:
        raise ValueError(f"--kind must be one of {sorted(KINDS)}, got {kind!r}")
    if raters < 1 or (attention_checks is not None and attention_checks < 0) or (clips is not None and clips < 1):
        raise ValueError("--raters must be at least 1, --clips at least 1, --attention-checks not negative")
    try:
        found = catalog.evaluation(dataset, evaluation)
        entry_a, entry_b = found.run(runs[0]), found.run(runs[1])
    except NotFound as exc:
        raise ValueError(str(exc)) from None
    common = [c for c in sorted(entry_a.clips) if c in entry_b.clips
              and entry_a.clips[c].video and entry_b.clips[c].video]
    if not common:
        raise ValueError(f"runs {runs[0]!r} and {runs[1]!r} share no synthesized clip in evaluation {evaluation!r}")
    chosen = common[: clips or len(common)]
    if attention_checks is None:
        attention_checks = default_attention_checks(len(chosen))
    study_id = _study_id(dataset)
    owner = secrets.token_urlsafe(24)
    folder = catalog.root / "studies" / study_id
    study = Study(id=study_id, dataset=dataset, evaluation=evaluation, run_a=runs[0], run_b=runs[1],
                  variant_a=entry_a.variant, variant_b=entry_b.variant, kind=kind, question=QUESTION,
                  owner_sha256=owner_digest(owner))
    people = [_new_rater(study_id, f"rater {i + 1}") for i in range(raters)]
    try:
        trials = _prepare_trials(catalog, entry_a, entry_b, chosen, study_id, folder, KINDS[kind], attention_checks)
        await db.create()
        async with db.session() as session, session.begin():
            session.add(study)
            await session.flush()
            session.add_all(trials + people)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # no half-made study left behind
        raise
    return StudyLinks(study, len(chosen), len(trials) - len(chosen), [p.token for p in people], owner)


def _prepare_trials(catalog: Catalog, entry_a: RunEntry, entry_b: RunEntry, chosen: list[str], study_id: str,
                    folder: Path, max_frames: int | None, attention_checks: int) -> list[Trial]:
    """Encode (and cut) each clip's two videos into the study folder, make the attention-check pairs, pad
    all to one size; the trials come back shuffled, so database ids do not group the checks."""
    trials = []
    neutral = lambda: folder / f"{secrets.token_hex(8)}.mp4"  # noqa: E731 - no clip, run or role in a name
    for clip in chosen:
        a = snapshot(catalog.media(entry_a.clips[clip].video), neutral(), max_frames)
        b = snapshot(catalog.media(entry_b.clips[clip].video), neutral(), max_frames)
        trials.append(Trial(study_id=study_id, clip_id=clip, video_a=_rel(catalog, a), video_b=_rel(catalog, b)))
    sources = [c for c in chosen if entry_a.clips[c].side_by_side]
    for index in range(attention_checks if sources else 0):
        clip = sources[index % len(sources)]
        real, broken = attention_pair(catalog.media(entry_a.clips[clip].side_by_side), neutral(), neutral(),
                                      max_frames, seed=index)
        trials.append(Trial(study_id=study_id, clip_id=clip, video_a=_rel(catalog, real),
                            video_b=_rel(catalog, broken), attention=True, expected="a"))
    pad_to_common_size(sorted(folder.glob("*.mp4")))
    random.Random(secrets.randbits(64)).shuffle(trials)
    return trials


async def add_raters(db: Database, study_id: str, count: int) -> list[str]:
    async with db.session() as session, session.begin():
        if await session.get(Study, study_id) is None:
            raise NotFound(f"no study {study_id!r}")
        people = [_new_rater(study_id, "") for _ in range(count)]
        session.add_all(people)
    return [p.token for p in people]


def _rel(catalog: Catalog, path: Path) -> str:
    return str(path.resolve().relative_to(catalog.root))


async def rater_of(db: Database, study_id: str, token: str) -> tuple[Study, Rater]:
    """The study and the rater a link names: NotFound for an unknown study, Forbidden for a token that is
    not one of this study's raters (another study's token included)."""
    async with db.session() as session:
        found = (await session.execute(select(Study, Rater).join(Rater, Rater.study_id == Study.id)
                                       .where(Rater.token == token, Study.id == study_id))).first()
        if found is not None:
            return found.Study, found.Rater
        if await session.get(Study, study_id) is None:
            raise NotFound(f"no study {study_id!r}")
        raise Forbidden("this link is not valid for this study")


async def owned_study(db: Database, study_id: str, owner: str) -> Study:
    """The study whose owner token this is; Forbidden otherwise (an unknown study included: a guess at a
    study id learns nothing)."""
    async with db.session() as session:
        study = await session.get(Study, study_id)
    if study is None or not study.owner_sha256 or not hmac.compare_digest(study.owner_sha256, owner_digest(owner)):
        raise Forbidden("this link is not this study's owner link")
    return study


async def rater_state(db: Database, study: Study, rater: Rater) -> tuple[list[Shown], set[int]]:
    """The rater's trials in their order, and the ids of those already voted on."""
    async with db.session() as session:
        trials = list((await session.execute(select(Trial).where(Trial.study_id == study.id))).scalars())
        voted = set((await session.execute(select(Vote.trial_id).where(Vote.rater_id == rater.id))).scalars())
    return rater_order(rater.seed, trials), voted


async def record_vote(db: Database, study_id: str, token: str, trial_id: int, side: str) -> tuple[Study, bool]:
    """Store the rater's choice for a trial: (its study, True if stored now, False if this rater had already
    voted on it — the first vote stands)."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side[:20]!r}")
    study, rater = await rater_of(db, study_id, token)
    async with db.session() as session:
        trial = await session.get(Trial, trial_id)
        if trial is None or trial.study_id != study.id:
            raise NotFound(f"no trial {trial_id} in study {study_id!r}")
    left = next(s.left for s in rater_order(rater.seed, [trial]))
    choice = left if side == "left" else ("b" if left == "a" else "a")
    try:
        async with db.session() as session, session.begin():
            session.add(Vote(rater_id=rater.id, trial_id=trial.id, choice=choice, left=left))
    except IntegrityError:
        return study, False
    return study, True


@dataclass(frozen=True)
class StudyResult:
    study: Study
    votes_a: int
    votes: int
    raters: int
    excluded_raters: int  # failed an attention check: their votes are not counted
    attention_votes: int

    @property
    def preference_a(self) -> float | None:
        return self.votes_a / self.votes if self.votes else None

    def row(self) -> dict[str, str]:
        """The paper's layout: A / B preference, plus the 95 % Wilson interval of A's share and the count."""
        low, high = wilson_interval(self.votes_a, self.votes)
        share = self.preference_a
        s = self.study
        return {"study": s.id, "kind": s.kind,
                "A": f"{s.run_a} ({s.variant_a})" if s.variant_a else s.run_a,
                "B": f"{s.run_b} ({s.variant_b})" if s.variant_b else s.run_b,
                "A / B preference": f"{share:.2f} / {1 - share:.2f}" if share is not None else "no votes yet",
                "95% CI of A": f"[{low:.2f}, {high:.2f}]" if self.votes else "n/a",
                "votes": str(self.votes), "raters": str(self.raters),
                "excluded (failed attention check)": str(self.excluded_raters)}


async def results(db: Database, dataset: str | None = None, study_id: str | None = None) -> list[StudyResult]:
    """Every study's tally (of one dataset, or one study), oldest first."""
    async with db.session() as session:
        query = select(Study).order_by(Study.created)
        if dataset:
            query = query.where(Study.dataset == dataset)
        if study_id:
            query = query.where(Study.id == study_id)
        studies = list((await session.execute(query)).scalars())
        out = []
        for study in studies:
            rows = (await session.execute(
                select(Vote.rater_id, Vote.choice, Trial.attention, Trial.expected)
                .join(Trial, Vote.trial_id == Trial.id).where(Trial.study_id == study.id))).all()
            failed = {r.rater_id for r in rows if r.attention and r.choice != r.expected}
            counted = [r for r in rows if not r.attention and r.rater_id not in failed]
            by_rater: dict[int, int] = defaultdict(int)
            for r in rows:
                by_rater[r.rater_id] += 1
            out.append(StudyResult(study, sum(r.choice == "a" for r in counted), len(counted),
                                   len(by_rater), len(failed), sum(r.attention for r in rows)))
    return out

