"""The reference models shipped in the repository (reference_models/): recipes, cards, packing, loading."""

from models.reference.card import PREFIX, ModelCard, ShippedModel, reference_dir, shipped_models

__all__ = ["PREFIX", "ModelCard", "ShippedModel", "reference_dir", "shipped_models"]
