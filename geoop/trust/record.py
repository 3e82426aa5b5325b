"""`Trust`: what a trained model knows about its own errors (the conformal calibration of its bands and error
bounds) and about its training geometries (the novelty model, the input fields' ranges), stored with the model;
and `TrustReport`, what it says about one prediction."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from geoop.trust.conformal import Calibration
from geoop.trust.novelty import NoveltyModel




@dataclass(frozen=True)
class Trust:
    """`calibration`: bands and error bounds (None: the run had no validation split); `novelty`: the novelty
    model (None: fewer than 2 validation geometries); `ranges`: {input field: (min, max) per component} over the
    training split."""

    calibration: Calibration | None
    novelty: NoveltyModel | None
    ranges: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"calibration": None if self.calibration is None else self.calibration.to_dict(),
                "novelty": None if self.novelty is None else self.novelty.to_dict(),
                "ranges": {k: [list(lo), list(hi)] for k, (lo, hi) in self.ranges.items()}}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Trust:
        return cls(None if raw.get("calibration") is None else Calibration.from_dict(raw["calibration"]),
                   None if raw.get("novelty") is None else NoveltyModel.from_dict(raw["novelty"]),
                   {k: (list(v[0]), list(v[1])) for k, v in (raw.get("ranges") or {}).items()})


@dataclass(frozen=True)
class TrustReport:
    """What a model says about one prediction at confidence `confidence`: per target field the band multiplier
    (`y_hat +- band * scale`), the estimated relative L2 and its bound; the geometry's novelty `p_value` and
    whether it is `flagged` (p < `level`); the input fields with points outside their training range (share
    of points); `smallest_p`: 1 / (validation geometries + 1), the smallest p-value the calibration can give
    (a level at or below it flags nothing). `available`: False for a model trained before calibration existed
    (bands unavailable)."""

    confidence: float
    level: float
    available: bool
    bands: dict[str, float] = field(default_factory=dict)
    estimated_error: dict[str, float] = field(default_factory=dict)
    error_bound: dict[str, float] = field(default_factory=dict)
    p_value: float | None = None
    outside_range: dict[str, float] = field(default_factory=dict)
    smallest_p: float | None = None

    @property
    def flagged(self) -> bool:
        return self.p_value is not None and self.p_value < self.level

    def to_dict(self) -> dict[str, Any]:
        finite = lambda v: v if v is None or math.isfinite(v) else None  # noqa: E731 (JSON has no inf)
        return {"confidence": self.confidence, "available": self.available,
                "bands": {k: finite(v) for k, v in self.bands.items()},
                "estimated_rel_l2": self.estimated_error,
                "rel_l2_bound": {k: finite(v) for k, v in self.error_bound.items()},
                "novelty": {"p_value": self.p_value, "level": self.level, "flagged": self.flagged,
                            "smallest_p": self.smallest_p},
                "outside_training_range": self.outside_range}

    def lines(self) -> list[str]:
        """What `geoop predict` prints."""
        if not self.available:
            return ["error bands unavailable: this model was trained before geoop calibrated its models "
                    "(retrain it to get them)"]
        out = []
        for name, bound in self.error_bound.items():
            what = f"<= {bound:.3g}" if math.isfinite(bound) else "unbounded (too few validation samples)"
            out.append(f"  {name}: expected relative L2 {what} with {self.confidence:.0%} confidence "
                       f"(band: prediction +- {self.bands[name]:.3g} x the per-point scale)")
        if self.p_value is not None:
            if self.flagged:
                out.append(f"  this geometry is unlike every training sample: p = {self.p_value:.3g}; treat the "
                           "result as extrapolation")
            else:
                out.append(f"  geometry novelty p = {self.p_value:.3g} (flagged below {self.level:g})")
            if self.smallest_p is not None and self.smallest_p >= self.level:
                out.append(f"  (too few validation geometries to flag anything at {self.level:g}: the smallest "
                           f"p-value they allow is {self.smallest_p:.3g})")
        for name, share in self.outside_range.items():
            out.append(f"  input {name!r} leaves its training range at {share:.1%} of the points: extrapolation")
        return out
