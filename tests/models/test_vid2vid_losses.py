import dataclasses

import pytest
import torch
import torchvision

from models.weights import REGISTRY, MissingWeightsError, file_sha256
from models.vid2vid.losses import VGGLoss, feature_matching_loss, flow_loss, lsgan_loss
from models.vid2vid.trainer import Vid2VidTrainer
from models.vid2vid.warp import warp

from .helpers_vid2vid import tiny_config


@pytest.fixture(scope="module")
def vgg_loss(vgg_standin) -> VGGLoss:
    folder, spec = vgg_standin
    return VGGLoss(folder, spec)


@pytest.fixture(scope="module")
def vgg_standin(tmp_path_factory):
    """A random-init VGG19 saved in torchvision's key layout under the registered file name."""
    folder = tmp_path_factory.mktemp("weights")
    spec = REGISTRY["vgg19"]
    with torch.device("meta"):
        model = torchvision.models.vgg19(weights=None)
    model = model.to_empty(device="cpu")
    g = torch.Generator().manual_seed(0)
    for name, tensor in model.state_dict().items():  # random values, cheaper than torchvision's init
        tensor.normal_(0.0, 0.02 if name.endswith("weight") else 0.0, generator=g)
    torch.save(model.state_dict(), folder / spec.filename)
    return folder, dataclasses.replace(spec, sha256=file_sha256(folder / spec.filename))


def test_vgg_loss_loads_standin_checkpoint_and_measures_difference(vgg_standin, vgg_loss) -> None:
    folder, spec = vgg_standin
    loss = vgg_loss
    reference = torchvision.models.vgg19(weights=None)
    reference.load_state_dict(torch.load(folder / spec.filename, weights_only=True))
    assert torch.equal(loss.slices[0][0].weight, reference.features[0].weight)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert loss(y, x).item() > 0
    assert not any(p.requires_grad for p in loss.parameters())


def test_missing_vgg_weights_raise_when_vgg_is_on(tmp_path) -> None:
    with pytest.raises(MissingWeightsError, match="vgg19-dcbb9e9d.pth"):
        VGGLoss(tmp_path)
    with pytest.raises(MissingWeightsError):
        Vid2VidTrainer(tiny_config(loss={"use_vgg": True}), weights_dir=tmp_path)
    assert Vid2VidTrainer(tiny_config(loss={"use_vgg": False}), weights_dir=tmp_path).vgg is None


def test_trainer_with_vgg_on_uses_it(vgg_loss) -> None:
    from .helpers_vid2vid import moving_clip

    trainer = Vid2VidTrainer(tiny_config(loss={"use_vgg": True}), vgg_loss=vgg_loss)
    losses = trainer.train_step(moving_clip(T=4))
    assert losses["G_VGG"] > 0


def test_lsgan_and_feature_matching_values() -> None:
    preds = [[torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)], [torch.zeros(1), torch.ones(1, 1, 2, 2)]]
    assert lsgan_loss(preds, True).item() == pytest.approx(0.25 + 0.0)
    assert lsgan_loss(preds, False).item() == pytest.approx(0.25 + 1.0)
    other = [[torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)], [torch.ones(1), torch.ones(1, 1, 2, 2)]]
    # pix2pixHD: a PatchGAN of n_layers_D layers returns n_layers_D + 2 outputs, each intermediate one weighs
    # 4 / (n_layers_D + 1) / num_D. Here n_layers_D = 0: 4 / 1 / 2 scales = 2 each; |0 - 1| = 1
    assert feature_matching_loss(preds, other).item() == pytest.approx(4.0)
    # the default D (n_layers_D = 3: 5 outputs, 4 matched at weight 4 / 4 / 1): 1.0 per layer
    five = [[torch.zeros(1, 1, 2, 2) for _ in range(5)]]
    ones = [[torch.ones(1, 1, 2, 2) for _ in range(5)]]
    assert feature_matching_loss(five, ones).item() == pytest.approx(4.0)


def test_flow_loss_is_zero_for_the_true_flow_and_positive_otherwise() -> None:
    g = torch.Generator().manual_seed(0)
    prev = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 20, 20, generator=g), 3, 1, 1)
    true = torch.zeros(2, 2, 20, 20)
    true[:, 0] = 2.0
    cur = warp(prev, true)
    exact = flow_loss(true, prev, cur, reference=true)
    assert exact["epe"].item() == 0 and exact["warp"].item() < 1e-6
    wrong = flow_loss(torch.zeros_like(true), prev, cur, reference=true)
    assert wrong["epe"].item() == pytest.approx(1.0) and wrong["warp"].item() > 0.01
    conf = torch.zeros(2, 1, 20, 20)
    assert flow_loss(torch.zeros_like(true), prev, cur, true, conf)["epe"].item() == 0  # fully masked out
