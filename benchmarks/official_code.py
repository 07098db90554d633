"""Run NVIDIA's released vid2vid code (a user's checkout of github.com/NVIDIA/vid2vid, outside this repo) beside
ours in one process: the same-run numeric check and speed ratio of issue 11.

Nothing of the official code is copied here: the checkout is imported from where it lies (its ``models``
package under another name, since ours is called ``models`` too), and small shims let it run on a CPU-only
torch: ``Tensor.cuda`` returns the tensor itself and ``torch.cuda.FloatTensor`` / ``ByteTensor`` make CPU
tensors, only while the official code runs (:func:`cpu_shims`). Its networks are built with random weights by
its own ``define_G``, saved as its training would (``latest_net_G<s>.pth``), loaded by its own
``Vid2VidModelG`` (test mode, ``--use_real_img``) and imported into ours by our real path
(``import_official`` -> model file -> ``load_generator``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F

PACKAGE = "nvidia_vid2vid_models"


class OfficialCodeError(ValueError):
    """The folder given as the official code is missing or is not a checkout of NVIDIA/vid2vid."""


#: file -> text it must contain, to recognise a checkout of NVIDIA/vid2vid
_MARKERS = {
    "models/networks.py": "class CompositeGenerator",
    "models/vid2vid_model_G.py": "class Vid2VidModelG",
    "models/base_model.py": "def build_pyr",
    "util/util.py": "def tensor2im",
}


def check_checkout(path: str | Path) -> Path:
    """The checkout's absolute path; a clear error naming what is missing otherwise."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise OfficialCodeError(f"--official-code {path}: no such folder (a checkout of github.com/NVIDIA/vid2vid)")
    for name, marker in _MARKERS.items():
        file = root / name
        if not file.is_file() or marker not in file.read_text(errors="replace"):
            raise OfficialCodeError(f"--official-code {path}: not a checkout of NVIDIA/vid2vid "
                                    f"({name} {'lacks ' + repr(marker) if file.is_file() else 'is missing'})")
    return root


def import_package(root: Path) -> ModuleType:
    """The checkout's ``models`` package, imported as ``nvidia_vid2vid_models`` (its ``util`` from the checkout)."""
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    if str(root) not in sys.path:
        sys.path.append(str(root))  # after ours: only its top-level ``util`` is found there
    spec = importlib.util.spec_from_file_location(PACKAGE, root / "models" / "__init__.py",
                                                  submodule_search_locations=[str(root / "models")])
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)
    for name in ("networks", "base_model", "vid2vid_model_G"):
        importlib.import_module(f"{PACKAGE}.{name}")
    return package


def _cpu_tensor(dtype: torch.dtype):
    def make(*size: Any) -> torch.Tensor:
        return torch.empty(*size, dtype=dtype)

    return make


_grid_sample = F.grid_sample


def _grid_sample_as_written(*args: Any, align_corners: bool | None = None, **kwargs: Any) -> torch.Tensor:
    """grid_sample as the official code was written for (PyTorch 0.4: corners aligned, the default until 1.3)."""
    return _grid_sample(*args, align_corners=True if align_corners is None else align_corners, **kwargs)


@contextlib.contextmanager
def cpu_shims() -> Iterator[None]:
    """While the official code runs: ``.cuda(...)`` is a no-op, ``torch.cuda.*Tensor`` make CPU tensors and
    ``grid_sample`` keeps the PyTorch 0.4 default the official code relies on (``align_corners=True``)."""
    saved = (torch.Tensor.cuda, getattr(torch.cuda, "FloatTensor", None), getattr(torch.cuda, "ByteTensor", None))
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    torch.cuda.FloatTensor = _cpu_tensor(torch.float32)  # type: ignore[attr-defined]
    torch.cuda.ByteTensor = _cpu_tensor(torch.uint8)  # type: ignore[attr-defined]
    F.grid_sample = _grid_sample_as_written
    try:
        yield
    finally:
        torch.Tensor.cuda = saved[0]  # type: ignore[method-assign]
        torch.cuda.FloatTensor, torch.cuda.ByteTensor = saved[1], saved[2]  # type: ignore[attr-defined]
        F.grid_sample = _grid_sample


def street_options(checkpoints_dir: Path, name: str = "label2city_2048") -> argparse.Namespace:
    """The options of the official ``scripts/street/test_2048.sh`` (real first frames instead of the
    single-frame G), as its option parser would leave them, for a CPU run."""
    return argparse.Namespace(
        name=name, checkpoints_dir=str(checkpoints_dir), which_epoch="latest", load_pretrain="", continue_train=False,
        isTrain=False, gpu_ids=[], debug=True, fp16=False, batchSize=1, n_gpus_gen=1, dataset_mode="test",
        dataroot="datasets/Cityscapes/", label_nc=35, input_nc=3, output_nc=3, use_instance=True, fg=True,
        fg_labels=[26], no_flow=False, openpose_only=False, n_frames_G=3, ngf=128, netG="composite",
        n_downsample_G=3, n_blocks=9, n_blocks_local=3, norm="batch", n_scales_spatial=3, use_single_G=False,
        use_real_img=True, no_first_img=False, loadSize=2048,
    )


def write_random_generator(package: ModuleType, opt: argparse.Namespace, seed: int = 0) -> list[Path]:
    """The official per-scale generators with their own random initialisation, saved as training saves them."""
    networks = package.networks
    torch.manual_seed(seed)
    input_nc = opt.label_nc * opt.n_frames_G + (opt.n_frames_G if opt.use_instance else 0)
    prev_nc = (opt.n_frames_G - 1) * opt.output_nc
    folder = Path(opt.checkpoints_dir) / opt.name
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with cpu_shims():
        for s in range(opt.n_scales_spatial):
            kind = opt.netG if s == 0 else opt.netG + "Local"
            net = networks.define_G(input_nc, opt.output_nc, prev_nc, opt.ngf // 2**s, kind, opt.n_downsample_G,
                                    opt.norm, s, [], opt)
            path = folder / f"{opt.which_epoch}_net_G{s}.pth"
            torch.save(net.state_dict(), path)
            paths.append(path)
            del net
    return paths


class OfficialGenerator:
    """The official ``Vid2VidModelG`` in test mode; ``step`` runs its ``inference`` for one frame and also
    returns the finest scale's flow and mask (read by a forward hook, as its test script never returns them)."""

    def __init__(self, package: ModuleType, opt: argparse.Namespace) -> None:
        with cpu_shims():
            self.model = package.vid2vid_model_G.Vid2VidModelG()
            self.model.initialize(opt)
        self.captured: dict[str, torch.Tensor] = {}
        finest = getattr(self.model, f"netG{opt.n_scales_spatial - 1}")
        forward = finest.forward  # its test path calls ``netG.forward`` itself (no hooks run): wrap that

        def capture(*args: Any, **kwargs: Any) -> tuple:
            output = forward(*args, **kwargs)
            self.captured = {"image": output[0], "flow": output[1], "mask": output[2]}
            return output

        finest.forward = capture

    def reset(self) -> None:
        """A new sequence: the next step takes its previous frames from the real ones given (as test.py does)."""
        self.model.fake_B_prev = None

    def parameters(self) -> int:
        return sum(p.numel() for s in range(self.model.n_scales) for p in getattr(self.model, f"netG{s}").parameters())

    def step(self, labels: torch.Tensor, images: torch.Tensor, instance: torch.Tensor) -> dict[str, torch.Tensor]:
        """labels / instance (1, L+1, H, W) ids, images (1, L+1, 3, H, W): one generated frame."""
        with cpu_shims():
            self.model.inference(labels.unsqueeze(2).float(), images, instance.unsqueeze(2).float())
        return dict(self.captured)
