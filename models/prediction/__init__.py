"""Future video prediction (the paper's Section 4 extension): a mask predictor that forecasts the next
label maps from the last K observed ones and their flows, applied recursively with bounded memory;
baselines that need no training; and the horizon table of Table 3's form. No Prefect here.
"""

from .checkpoint import checkpoint_kind, load_predictor, require_vid2vid
from .config import PredictorConfig, load_predictor_config
from .network import MaskPredictor
from .rollout import (CopyLastForecaster, ExtrapolateFlowForecaster, History, MapFrame, PredictorForecaster,
                      observed_frames, predict_future)
from .trainer import PredictorTrainer

__all__ = ["CopyLastForecaster", "ExtrapolateFlowForecaster", "History", "MapFrame", "MaskPredictor",
           "PredictorConfig", "PredictorForecaster", "PredictorTrainer", "checkpoint_kind", "load_predictor",
           "load_predictor_config", "observed_frames", "predict_future", "require_vid2vid"]
