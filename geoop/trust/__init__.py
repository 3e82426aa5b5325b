"""Trust: error bands with a coverage guarantee (split conformal calibration on the validation split) and
out-of-distribution flags for geometries and input fields; see docs/trust.md."""
from geoop.trust.conformal import Calibration, ScoreQuantiles, calibrate
from geoop.trust.novelty import NoveltyModel, descriptor
from geoop.trust.record import CONFIDENCE, NOVELTY_LEVEL, Trust, TrustReport

__all__ = ["CONFIDENCE", "NOVELTY_LEVEL", "Calibration", "NoveltyModel", "ScoreQuantiles", "Trust", "TrustReport",
           "calibrate", "descriptor"]
