import numpy as np
import pytest
import torch

from models.vid2vid.checkpoint import load_multimodal, save_checkpoint
from models.vid2vid.encoder import FeatureEncoder, instance_average
from models.vid2vid.generator import Vid2VidGenerator
from models.vid2vid.inference import synthesize
from models.vid2vid.multimodal import ClassFeatureGMM, InstanceFeatureSampler, collect_instance_features, fit_class_mixtures
from models.vid2vid.trainer import Vid2VidTrainer

from .helpers_vid2vid import moving_clip, tiny_config


def test_instance_average_pools_per_object() -> None:
    feats = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(1, 2, 2, 3)
    semantic = torch.tensor([[[0, 0, 13], [0, 13, 13]]])
    instance = torch.tensor([[[0, 0, 1], [0, 2, 1]]])
    out = instance_average(feats, semantic, instance)
    ch0 = feats[0, 0]
    assert torch.allclose(out[0, 0, 0, 0], (ch0[0, 0] + ch0[0, 1] + ch0[1, 0]) / 3)
    assert torch.allclose(out[0, 0, 0, 2], (ch0[0, 2] + ch0[1, 2]) / 2)
    assert out[0, 0, 1, 1] == ch0[1, 1]  # its own instance
    # same instance id under two classes = two objects
    out2 = instance_average(feats, torch.tensor([[[0, 5, 5], [0, 5, 5]]]), torch.zeros(1, 2, 3, dtype=torch.long))
    assert torch.allclose(out2[0, 0, 0, 0], (ch0[0, 0] + ch0[1, 0]) / 2)


def _fitted_gmm(seed: int = 0) -> ClassFeatureGMM:
    rng = np.random.default_rng(0)
    classes = np.repeat([0, 13], 60)
    feats = np.concatenate([rng.normal(-0.5, 0.1, (60, 3)), rng.normal(0.5, 0.05, (60, 3))])
    return ClassFeatureGMM.fit(classes, feats, n_components=2, seed=seed)


def test_gmm_sampling_is_deterministic_by_seed_and_class_specific() -> None:
    gmm = _fitted_gmm()
    semantic = torch.zeros(1, 8, 8, dtype=torch.long)
    semantic[:, 2:5, 2:5] = 13
    instance = torch.zeros(1, 8, 8, dtype=torch.long)
    instance[:, 2:5, 2:5] = 1
    a = InstanceFeatureSampler(gmm, seed=7)(semantic, instance)
    b = InstanceFeatureSampler(gmm, seed=7)(semantic, instance)
    c = InstanceFeatureSampler(gmm, seed=8)(semantic, instance)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a[0, :, 3, 3].mean() > 0.2 and a[0, :, 0, 0].mean() < -0.2  # car vs road distributions
    # one vector per object, stable across frames
    sampler = InstanceFeatureSampler(gmm, seed=1)
    first, second = sampler(semantic, instance), sampler(semantic, instance)
    assert torch.equal(first, second) and torch.unique(first[0, 0]).numel() == 2
    restored = ClassFeatureGMM.from_state_dict(gmm.state_dict())
    assert torch.equal(InstanceFeatureSampler(restored, seed=7)(semantic, instance), a)


def test_multimodal_training_fit_and_sampled_synthesis(tmp_path) -> None:
    config = tiny_config(multimodal={"enabled": True}, generator={"n_scales": 1}, discriminator={"use_video_discriminator": False})
    trainer = Vid2VidTrainer(config)
    clip = moving_clip(T=4, H=32, W=64)
    losses = trainer.train_step(clip)
    assert np.isfinite(losses["G_total"])
    encoder = trainer.G.encoder
    assert isinstance(encoder, FeatureEncoder) and any(p.grad is not None for p in encoder.parameters())
    classes, feats = collect_instance_features(encoder.eval(), clip["image"][0], clip["semantic"][0], clip["instance"][0])
    assert feats.shape[1] == 3 and set(classes.tolist()) == {0, 10, 13}
    gmm = ClassFeatureGMM.fit(classes, feats, n_components=2, seed=0)
    path = save_checkpoint(tmp_path / "mm.pt", trainer, gmm=gmm)
    enc2, gmm2 = load_multimodal(path)
    assert enc2 is not None and gmm2 is not None and set(gmm2.params) == {0, 10, 13}
    gen = trainer.G.generator.eval()
    frames = [{"semantic": clip["semantic"][0, t], "instance": clip["instance"][0, t]} for t in range(4)]

    def run(seed: int) -> torch.Tensor:
        return torch.stack([o["image"] for o in synthesize(gen, frames, feature_sampler=InstanceFeatureSampler(gmm2, seed))])

    assert torch.equal(run(3), run(3))
    assert not torch.allclose(run(3), run(4))
    assert isinstance(gen, Vid2VidGenerator) and gen.feat_nc == 3


def test_mixtures_are_fitted_per_class_on_encoder_features_of_batches() -> None:

    config = tiny_config(multimodal={"enabled": True, "n_components": 2})
    encoder = FeatureEncoder(config)
    clip = moving_clip(T=4, H=32, W=64)
    batches = [{"image": clip["image"][0, :2], "semantic": clip["semantic"][0, :2], "instance": clip["instance"][0, :2]},
               {"image": clip["image"][0, 2:], "semantic": clip["semantic"][0, 2:], "instance": clip["instance"][0, 2:]}]
    gmm = fit_class_mixtures(encoder, config, batches, seed=0)
    assert set(gmm.params) == {0, 10, 13} and gmm.feat_nc == config.multimodal.feat_nc
    classes, feats = collect_instance_features(encoder, clip["image"][0], clip["semantic"][0], clip["instance"][0])
    for cls in (0, 13):  # each class's mixture is centred on that class's pooled features
        mean = (gmm.params[cls]["weights"][:, None] * gmm.params[cls]["means"]).sum(0).numpy()
        assert np.allclose(mean, feats[classes == cls].mean(0), atol=1e-4)
    again = fit_class_mixtures(encoder, config, batches, seed=0)
    assert all(torch.equal(gmm.params[c]["means"], again.params[c]["means"]) for c in gmm.params)
    with pytest.raises(ValueError, match="'instance' stage"):
        fit_class_mixtures(encoder, config, [{"image": clip["image"][0], "semantic": clip["semantic"][0]}])
