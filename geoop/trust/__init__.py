"""Trust: error bands with a coverage guarantee (split conformal calibration on the validation split) and
out-of-distribution flags for geometries and input fields; see docs/trust.md."""
from importlib import import_module
from typing import Any

from geoop.trust.levels import CONFIDENCE, NOVELTY_LEVEL

#: the public names imported on first use (numpy, scipy, geometry), and the module that holds each
_EXPORTS = {"Calibration": "geoop.trust.conformal", "ScoreQuantiles": "geoop.trust.conformal",
            "calibrate": "geoop.trust.conformal", "NoveltyModel": "geoop.trust.novelty",
            "descriptor": "geoop.trust.novelty", "Trust": "geoop.trust.record", "TrustReport": "geoop.trust.record"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'geoop.trust' has no attribute {name!r}")


__all__ = ["CONFIDENCE", "NOVELTY_LEVEL", "Calibration", "NoveltyModel", "ScoreQuantiles", "Trust", "TrustReport",
           "calibrate", "descriptor"]
