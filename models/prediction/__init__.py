"""Future video prediction (the paper"s Section 4 extension): a mask predictor that forecasts the next
label maps from the last K observed ones and their flows, applied recursively with bounded memory;
baselines that need no training; and the horizon table of Table 3"s form. No Prefect here.
"""

from models.lazy import lazy_face

# public name -> submodule that defines it; loaded on first use (models/lazy.py says why)
_EXPORTS = {
    "checkpoint_kind": "checkpoint",
    "load_predictor": "checkpoint",
    "require_vid2vid": "checkpoint",
    "PredictorConfig": "config",
    "load_predictor_config": "config",
    "MaskPredictor": "network",
    "CopyLastForecaster": "rollout",
    "ExtrapolateFlowForecaster": "rollout",
    "History": "rollout",
    "MapFrame": "rollout",
    "PredictorForecaster": "rollout",
    "observed_frames": "rollout",
    "predict_future": "rollout",
    "PredictorTrainer": "trainer",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
