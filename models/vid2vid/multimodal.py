"""Per-class Gaussian mixtures over instance features, fitted after training and sampled at test time.

Fitting uses ``sklearn.mixture.GaussianMixture``; the fitted parameters are kept as plain tensors (so they
live in weights_only checkpoints) and sampled with a seeded NumPy generator, so a seed fixes the output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

from .config import ModelConfig
from .encoder import FeatureEncoder, instance_keys


@torch.no_grad()
def collect_instance_features(
    encoder: FeatureEncoder, image: torch.Tensor, semantic: torch.Tensor, instance: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """One (class, feature) row per object in each frame: frames (N, 3, H, W), labels (N, H, W)."""
    feats = encoder(image, semantic, instance)
    keys = instance_keys(semantic, instance)
    classes, vectors = [], []
    for n in range(image.shape[0]):
        uniq, first = np.unique(keys[n].reshape(-1).cpu().numpy(), return_index=True)
        flat_feat = feats[n].reshape(feats.shape[1], -1)[:, torch.as_tensor(first)].T.cpu().numpy()
        flat_sem = semantic[n].reshape(-1)[torch.as_tensor(first)].cpu().numpy()
        classes.append(flat_sem)
        vectors.append(flat_feat)
    return np.concatenate(classes), np.concatenate(vectors)


class ClassFeatureGMM:
    """``{class id: GaussianMixture parameters}``; classes never seen get the zero feature."""

    def __init__(self, feat_nc: int, params: Mapping[int, dict[str, torch.Tensor]] | None = None) -> None:
        self.feat_nc = feat_nc
        self.params: dict[int, dict[str, torch.Tensor]] = dict(params or {})

    @classmethod
    def fit(
        cls, classes: np.ndarray, features: np.ndarray, n_components: int = 10, seed: int = 0, ignore: Iterable[int] = (255,)
    ) -> "ClassFeatureGMM":
        from sklearn.mixture import GaussianMixture

        skip = set(ignore)
        params = {}
        for c in np.unique(classes):
            if int(c) in skip:
                continue
            x = features[classes == c].astype(np.float64)
            k = max(1, min(n_components, len(x)))
            gmm = GaussianMixture(n_components=k, covariance_type="full", reg_covar=1e-4, random_state=seed).fit(x)
            params[int(c)] = {
                "weights": torch.as_tensor(gmm.weights_),
                "means": torch.as_tensor(gmm.means_),
                "covariances": torch.as_tensor(gmm.covariances_),
            }
        return cls(features.shape[1], params)

    def sample(self, class_id: int, rng: np.random.Generator) -> np.ndarray:
        p = self.params.get(int(class_id))
        if p is None:
            return np.zeros(self.feat_nc)
        weights = p["weights"].numpy()
        k = int(rng.choice(len(weights), p=weights / weights.sum()))
        return rng.multivariate_normal(p["means"][k].numpy(), p["covariances"][k].numpy())

    def state_dict(self) -> dict:
        return {"feat_nc": self.feat_nc, "classes": {str(c): dict(v) for c, v in self.params.items()}}

    @classmethod
    def from_state_dict(cls, state: Mapping) -> "ClassFeatureGMM":
        return cls(int(state["feat_nc"]), {int(c): dict(v) for c, v in state["classes"].items()})


def fit_class_mixtures(
    encoder: FeatureEncoder, config: ModelConfig, batches: Iterable[Mapping[str, torch.Tensor]], seed: int = 0
) -> ClassFeatureGMM:
    """The post-training step of Sec. 3: encode the training frames with E, pool per instance, and fit one
    Gaussian mixture per class (``config.multimodal.n_components`` components).

    ``batches`` hold ``image`` (N, 3, H, W) in [-1, 1], the instance stage's ids and, when the model
    declares a one_hot input, its class ids (N, H, W); without class labels every object is class 0.
    """
    labels, instance_stage = config.input.labels, config.multimodal.instance_stage
    classes, features = [], []
    encoder.eval()
    for batch in batches:
        if instance_stage not in batch:
            raise ValueError(f"fitting the feature mixtures needs the {instance_stage!r} stage's instance ids")
        instance = batch[instance_stage]
        semantic = batch[labels.stage] if labels is not None else torch.zeros_like(instance)
        c, f = collect_instance_features(encoder, batch["image"], semantic, instance)
        classes.append(c)
        features.append(f)
    if not classes:
        raise ValueError("no training frames to fit the feature mixtures on")
    ignore = (labels.ignore_label,) if labels is not None else ()
    return ClassFeatureGMM.fit(np.concatenate(classes), np.concatenate(features),
                               n_components=config.multimodal.n_components, seed=seed, ignore=ignore)


class InstanceFeatureSampler:
    """Feature maps for the generator: one sampled vector per object, kept for the whole video.

    The same (class, instance id) pair gets the same vector in every frame, so appearance is stable;
    ``overrides`` pin a class's vector (e.g. change only the road's look, as in Fig. 3).
    """

    def __init__(self, gmm: ClassFeatureGMM, seed: int = 0, overrides: Mapping[int, np.ndarray] | None = None) -> None:
        self.gmm = gmm
        self.rng = np.random.default_rng(seed)
        self.overrides = {int(k): np.asarray(v, dtype=np.float64) for k, v in (overrides or {}).items()}
        self.cache: dict[int, np.ndarray] = {}

    def __call__(self, semantic: torch.Tensor, instance: torch.Tensor) -> torch.Tensor:
        """(B, H, W) labels -> (B, d, H, W) float features."""
        keys = instance_keys(semantic, instance)
        out = torch.zeros(semantic.shape[0], self.gmm.feat_nc, *semantic.shape[-2:], device=semantic.device)
        for b in range(semantic.shape[0]):
            uniq, inverse = torch.unique(keys[b].reshape(-1), return_inverse=True)
            table = []
            for key in uniq.tolist():
                if key not in self.cache:
                    cls = key % 256
                    self.cache[key] = self.overrides.get(cls, None) if cls in self.overrides else self.gmm.sample(cls, self.rng)
                table.append(self.cache[key])
            values = torch.as_tensor(np.stack(table), dtype=torch.float32, device=semantic.device)
            out[b] = values[inverse].T.reshape(self.gmm.feat_nc, *semantic.shape[-2:])
        return out
