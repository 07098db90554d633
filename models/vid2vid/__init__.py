"""vid2vid (Wang et al., NeurIPS 2018) in plain PyTorch: networks, losses, training step, inference.

Never imports Prefect: usable from a notebook, a Ray worker or a Prefect task alike.
"""

from models.lazy import lazy_face

# public name -> submodule that defines it; loaded on first use (models/lazy.py says why)
_EXPORTS = {
    "encode_source": "batch",
    "reference_backward_flows": "batch",
    "remap_labels": "batch",
    "validate_batch": "batch",
    "load_checkpoint": "checkpoint",
    "load_generator": "checkpoint",
    "load_multimodal": "checkpoint",
    "load_trainer": "checkpoint",
    "save_checkpoint": "checkpoint",
    "ModelConfig": "config",
    "load_model_config": "config",
    "Discriminators": "discriminators",
    "ImageDiscriminator": "discriminators",
    "VideoDiscriminator": "discriminators",
    "temporal_indices": "discriminators",
    "FeatureEncoder": "encoder",
    "instance_average": "encoder",
    "Vid2VidGenerator": "generator",
    "optimize_for_inference": "inference",
    "synthesize": "inference",
    "VGGLoss": "losses",
    "ClassFeatureGMM": "multimodal",
    "InstanceFeatureSampler": "multimodal",
    "collect_instance_features": "multimodal",
    "fit_class_mixtures": "multimodal",
    "ProgressiveSchedule": "schedule",
    "Stage": "schedule",
    "GeneratorSide": "trainer",
    "Vid2VidTrainer": "trainer",
    "compose_backward_flows": "warp",
    "forward_to_backward_flow": "warp",
}
# (the function ``warp`` is imported from ``models.vid2vid.warp``: the submodule of that name would shadow it)
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
