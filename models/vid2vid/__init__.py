"""vid2vid (Wang et al., NeurIPS 2018) in plain PyTorch: networks, losses, training step, inference.

Never imports Prefect: usable from a notebook, a Ray worker or a Prefect task alike.
"""

from .batch import encode_source, reference_backward_flows, remap_labels, validate_batch
from .checkpoint import load_checkpoint, load_generator, load_multimodal, load_trainer, save_checkpoint
from .config import ModelConfig, load_model_config
from .discriminators import Discriminators, ImageDiscriminator, VideoDiscriminator, temporal_indices
from .encoder import FeatureEncoder, instance_average
from .generator import Vid2VidGenerator
from .inference import optimize_for_inference, synthesize
from .losses import VGGLoss
from .multimodal import ClassFeatureGMM, InstanceFeatureSampler, collect_instance_features, fit_class_mixtures
from .schedule import ProgressiveSchedule, Stage
from .trainer import GeneratorSide, Vid2VidTrainer
from .warp import compose_backward_flows, forward_to_backward_flow, warp

__all__ = [
    "ClassFeatureGMM",
    "Discriminators",
    "FeatureEncoder",
    "GeneratorSide",
    "ImageDiscriminator",
    "InstanceFeatureSampler",
    "ModelConfig",
    "ProgressiveSchedule",
    "Stage",
    "VGGLoss",
    "VideoDiscriminator",
    "Vid2VidGenerator",
    "Vid2VidTrainer",
    "collect_instance_features",
    "compose_backward_flows",
    "encode_source",
    "fit_class_mixtures",
    "forward_to_backward_flow",
    "instance_average",
    "load_checkpoint",
    "load_generator",
    "load_model_config",
    "load_multimodal",
    "load_trainer",
    "optimize_for_inference",
    "reference_backward_flows",
    "remap_labels",
    "save_checkpoint",
    "synthesize",
    "temporal_indices",
    "validate_batch",
    "warp",
]
