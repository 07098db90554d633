import math

import pytest
import torch

from models.vid2vid.checkpoint import load_checkpoint, load_generator, load_trainer, save_checkpoint
from models.vid2vid.schedule import ProgressiveSchedule
from models.vid2vid.trainer import Vid2VidTrainer

from .helpers_vid2vid import moving_clip, tiny_config


def test_progressive_schedule_coarse_first_and_doubling() -> None:
    config = tiny_config(train={"epochs_per_scale": 4, "epochs_per_doubling": 2, "initial_seq_len": 4, "max_seq_len": 8})
    sched = ProgressiveSchedule(config)
    stages = [(s.n_scales, s.seq_len, s.scale_factor) for s in map(sched.at, range(10))]
    assert stages[:4] == [(1, 4, 2), (1, 4, 2), (1, 8, 2), (1, 8, 2)]
    assert stages[4:7] == [(2, 4, 1), (2, 4, 1), (2, 8, 1)]
    assert stages[9] == (2, 8, 1)


def test_train_step_follows_the_schedule_and_returns_finite_floats() -> None:
    trainer = Vid2VidTrainer(tiny_config())
    clip = moving_clip(T=8)
    trainer.set_epoch(0)
    losses = trainer.train_step(clip)  # coarse scale (16x32), 4 frames
    assert losses["n_scales"] == 1 and losses["seq_len"] == 4
    assert all(isinstance(v, float) and math.isfinite(v) for v in losses.values())
    assert losses["G_flow_epe"] > 0 and losses["G_GAN_V"] > 0 and losses["D_fake_V"] > 0
    trainer.set_epoch(4)
    losses = trainer.train_step(clip)
    assert losses["n_scales"] == 2 and losses["seq_len"] == 8


@pytest.mark.parametrize(
    "overrides",
    [
        {"generator": {"use_fg_prior": False}},
        {"discriminator": {"use_video_discriminator": False}},
        {"generator": {"use_flow_warping": False}},
        {"frame_by_frame": True, "generator": {"n_prev": 0, "use_flow_warping": False}, "discriminator": {"use_video_discriminator": False}},
    ],
    ids=["no-fg-prior", "no-video-D", "no-flow-warping", "frame-by-frame"],
)
def test_ablations_train(overrides) -> None:
    trainer = Vid2VidTrainer(tiny_config(generator={"n_scales": 1, **overrides.get("generator", {})}, **{k: v for k, v in overrides.items() if k != "generator"}))
    losses = trainer.train_step(moving_clip(T=4))
    assert math.isfinite(losses["G_total"])
    if "discriminator" in overrides:
        assert losses["G_GAN_V"] == 0 and losses["D_real_V"] == 0
    if overrides.get("generator", {}).get("use_flow_warping") is False:
        assert losses["G_flow_warp"] == 0


def test_checkpoint_round_trip_resumes_exactly(tmp_path) -> None:
    config = tiny_config(generator={"n_scales": 1})
    clip = moving_clip(T=6, seed=3)
    trainer = Vid2VidTrainer(config)
    trainer.set_epoch(1)
    trainer.train_step(clip)
    path = save_checkpoint(tmp_path / "ckpt.pt", trainer)
    state = load_checkpoint(path)  # weights_only=True
    assert state["config"] == config.to_dict() and state["epoch"] == 1 and state["step"] == 1
    resumed = load_trainer(path)
    assert resumed.epoch == 1 and resumed.stage == trainer.stage
    a, b = trainer.train_step(clip), resumed.train_step(clip)
    assert a == b  # same weights, optimiser moments and window-sampling RNG: bit-identical step
    for p, q in zip(trainer.G.parameters(), resumed.G.parameters()):
        assert torch.equal(p, q)
    gen, cfg = load_generator(save_checkpoint(tmp_path / "ckpt2.pt", resumed))
    src = torch.rand(1, 3, 20, 16, 32)
    prev = torch.rand(1, 2, 3, 16, 32)
    bg = torch.ones(1, 1, 16, 32)
    trainer.G.generator.eval()
    with torch.no_grad():
        assert torch.equal(gen(src, prev, bg)["image"], trainer.G.generator(src, prev, bg)["image"])
    with pytest.raises(ValueError, match="different model config"):
        Vid2VidTrainer(tiny_config(generator={"n_scales": 1, "ngf": 8})).load_state_dict(state)


def test_a_few_steps_reduce_the_reconstruction_loss() -> None:
    """Learning check: on one tiny clip, 25 updates bring the generated frames closer to the real ones."""
    config = tiny_config(
        input={"width": 32, "height": 16},
        generator={"n_scales": 1},
        discriminator={"use_video_discriminator": False},
        train={"lr": 1e-3},
    )
    trainer = Vid2VidTrainer(config)
    clip = moving_clip(T=4, H=16, W=32, seed=1)
    first = [trainer.train_step(clip) for _ in range(3)]
    for _ in range(22):
        last = trainer.train_step(clip)
    before = sum(s["L1"] for s in first) / 3
    assert last["L1"] < 0.7 * before, (before, last["L1"])
    assert last["G_FM_I"] < sum(s["G_FM_I"] for s in first) / 3


def test_official_recipe_options_train_and_weigh_in() -> None:
    """NVIDIA's raw-frame losses, G_Warp and detached previous outputs (the demo preset's recipe, issue 23)."""
    seq = {"initial_seq_len": 6, "max_seq_len": 6}
    plain = Vid2VidTrainer(tiny_config(generator={"n_scales": 1}, train=seq))
    recipe = Vid2VidTrainer(tiny_config(generator={"n_scales": 1}, train={**seq, "detach_previous": True},
                                        loss={"use_vgg": False, "raw_image_losses": True, "lambda_fake_warp": 10.0}))
    recipe.G.load_state_dict(plain.G.state_dict())
    recipe.D.load_state_dict(plain.D.state_dict())
    clip = moving_clip(T=6)
    a, b = plain.train_step(clip), recipe.train_step(clip)
    assert a.get("G_fake_warp", 0.0) == 0.0 and b["G_fake_warp"] > 0  # the term is reported as 0 when off
    assert b["G_GAN_I"] > a["G_GAN_I"] and b["D_fake_I"] > a["D_fake_I"]  # the raw frames add their own terms
    assert all(math.isfinite(v) for v in b.values())


def _parameters_without_gradient(trainer: Vid2VidTrainer, clip) -> dict[str, set[str]]:
    """Per module, the parameters some optimiser update saw without a gradient (observed at each update), over
    one training step in each distinct stage of the schedule."""
    missing: dict[str, set[str]] = {"G": set(), "D": set()}
    for name, optimizer, module in (("G", trainer.opt_G, trainer.G), ("D", trainer.opt_D, trainer.D)):
        def observed(*args, _step=optimizer.step, _module=module, _name=name, **kwargs):
            missing[_name].update(n for n, p in _module.named_parameters() if p.grad is None)
            return _step(*args, **kwargs)
        optimizer.step = observed
    stages: dict[tuple, int] = {}
    for epoch in range(trainer.config.train.epochs):
        stage = trainer.schedule.at(epoch)
        stages.setdefault((stage.n_scales, stage.seq_len, stage.finest_only), epoch)
    for epoch in stages.values():
        trainer.set_epoch(epoch)
        trainer.train_step(clip)
    return missing


@pytest.mark.parametrize("preset, overrides, expected", [
    ("tiny", {}, (True, True)),                               # two spatial scales, two temporal scales
    ("tiny", {"generator": {"n_scales": 1}, "discriminator": {"n_scales_temporal": 1}}, (False, False)),
    ("demo_street", {}, (False, False)),
    ("demo_street_frame", {}, (False, False)),
], ids=["tiny", "tiny-one-scale", "demo_street", "demo_street_frame"])
def test_ddp_searches_for_unused_parameters_only_where_an_update_can_leave_some(preset, overrides, expected):
    """DDP's find_unused_parameters follows the trainer's answer; where it says none, every update of every
    schedule stage gives every parameter a gradient (else DDP would stall), and where it says some, some do."""
    from models.vid2vid.config import load_model_config

    small = {"input": {"width": 64, "height": 32}, "loss": {"use_vgg": False}}  # the topology, at a small size
    trainer = Vid2VidTrainer(load_model_config(preset, **{**small, **overrides}))
    assert trainer.parameters_may_go_unused() == expected
    missing = _parameters_without_gradient(trainer, moving_clip(T=trainer.config.train.max_seq_len))
    for module, may_go_unused in zip(("G", "D"), expected):
        assert bool(missing[module]) == may_go_unused, (module, sorted(missing[module])[:5])
