"""Split conformal calibration: scores of the validation split turn a model's per-point scale into error bands
with a coverage guarantee, and its per-sample error estimate into a bound on the relative L2.

For exchangeable calibration and test samples, with `n` calibration scores s_1..s_n of a nonconformity
score s = |y - y_hat| / sigma, the band `y_hat +- q sigma`, q the ceil((n + 1) c)-th smallest score, covers a
new score with probability at least c (Vovk et al.; Lei et al. 2018). The guarantee is marginal (on average
over samples), and it does not hold under distribution shift: that is what the novelty flag is for
(`geoop.trust.novelty`)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: at most this many order statistics of a score distribution are kept (the checkpoint stays small)
KEPT = 2001


@dataclass(frozen=True)
class ScoreQuantiles:
    """The order statistics of `n` calibration scores, thinned to at most `KEPT`: `ranks` (1-based, always
    including 1 and n) and the `values` at them. `quantile(c)` is the conformal quantile, rounded up to the
    next kept rank (so it is never smaller than the exact one)."""

    n: int
    ranks: tuple[int, ...]
    values: tuple[float, ...]

    @classmethod
    def of(cls, scores: np.ndarray) -> ScoreQuantiles:
        s = np.sort(np.asarray(scores, dtype=np.float64).reshape(-1))
        s = s[np.isfinite(s)]
        if not len(s):
            return cls(0, (), ())
        ranks = np.unique(np.round(np.linspace(1, len(s), min(KEPT, len(s)))).astype(np.int64))
        return cls(len(s), tuple(int(r) for r in ranks), tuple(float(v) for v in s[ranks - 1]))

    def quantile(self, confidence: float) -> float:
        """The score q with P(new score <= q) >= `confidence` (inf when n is too small for that level)."""
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        rank = math.ceil((self.n + 1) * confidence)
        if rank > self.n or not self.n:
            return math.inf
        i = int(np.searchsorted(np.asarray(self.ranks), rank))
        return self.values[i]

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "ranks": list(self.ranks), "values": list(self.values)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ScoreQuantiles:
        return cls(int(raw["n"]), tuple(int(r) for r in raw["ranks"]), tuple(float(v) for v in raw["values"]))


def point_scores(pred: np.ndarray, truth: np.ndarray, scale: np.ndarray, defined: np.ndarray | None = None
                 ) -> np.ndarray:
    """`(K,)` nonconformity scores |y - y_hat| / sigma of every defined point and component; `pred`, `truth`,
    `scale` `(N, c)`, `defined` `(N,)` booleans (None: all)."""
    s = np.abs(truth - pred) / np.maximum(scale, 1e-30)
    return (s if defined is None else s[defined]).reshape(-1)


def relative_l2(pred: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> float:
    """sqrt(sum w |y_hat - y|^2) / sqrt(sum w |y|^2): a sample's relative L2 with quadrature weights `(N,)`."""
    w = weights.reshape(-1, 1)
    return math.sqrt(float((w * (pred - truth) ** 2).sum())) / max(math.sqrt(float((w * truth ** 2).sum())), 1e-30)


def estimated_error(pred: np.ndarray, scale: np.ndarray, weights: np.ndarray) -> float:
    """A sample's predicted relative L2 before calibration: sqrt(sum w sigma^2) / sqrt(sum w y_hat^2), with the
    quadrature weights `w` `(N,)` of the defined points and `pred`, `scale` `(N, c)` there."""
    w = weights.reshape(-1, 1)
    size = math.sqrt(float((w * pred ** 2).sum()))
    return math.sqrt(float((w * scale ** 2).sum())) / max(size, 1e-30)


@dataclass(frozen=True)
class FieldCalibration:
    """One target field's calibration: point scores and sample scores (true / estimated relative L2)."""

    points: ScoreQuantiles
    samples: ScoreQuantiles

    def to_dict(self) -> dict[str, Any]:
        return {"points": self.points.to_dict(), "samples": self.samples.to_dict()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FieldCalibration:
        return cls(ScoreQuantiles.from_dict(raw["points"]), ScoreQuantiles.from_dict(raw["samples"]))


@dataclass(frozen=True)
class Calibration:
    """Per target field, what the validation split says about the model's errors (`calibrate`); `split` and
    `samples`: where it came from; `scale`: "variance" (a learned per-point scale) or "constant"."""

    fields: dict[str, FieldCalibration]
    split: str
    samples: int
    scale: str

    def to_dict(self) -> dict[str, Any]:
        return {"fields": {k: v.to_dict() for k, v in self.fields.items()}, "split": self.split,
                "samples": self.samples, "scale": self.scale}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Calibration:
        return cls({k: FieldCalibration.from_dict(v) for k, v in raw["fields"].items()}, raw["split"],
                   int(raw["samples"]), raw["scale"])

    def band(self, name: str, confidence: float) -> float:
        """The multiplier q of a field's per-point scale: `y_hat +- q sigma` covers with `confidence`."""
        return self.fields[name].points.quantile(confidence)

    def error_bound(self, name: str, estimate: float, confidence: float) -> float:
        """A bound on a sample's relative L2 of field `name` that holds with `confidence`, from its estimate."""
        return self.fields[name].samples.quantile(confidence) * estimate


def calibrate(records: Sequence[dict[str, Any]], split: str, scale: str) -> Calibration:
    """A `Calibration` from per-sample records of a calibration split: each {"fields": {name: {"pred", "truth",
    "scale" (N, c), "defined" (N,) bool, "weights" (N,)}}}."""
    names = list(records[0]["fields"]) if records else []
    out = {}
    for name in names:
        points, samples = [], []
        for r in records:
            f = r["fields"][name]
            d = f["defined"]
            if not d.any():
                continue
            points.append(point_scores(f["pred"], f["truth"], f["scale"], d))
            w = f["weights"][d]
            err = relative_l2(f["pred"][d], f["truth"][d], w)
            samples.append(err / max(estimated_error(f["pred"][d], f["scale"][d], w), 1e-30))
        out[name] = FieldCalibration(ScoreQuantiles.of(np.concatenate(points) if points else np.zeros(0)),
                                     ScoreQuantiles.of(np.asarray(samples)))
    return Calibration(out, split, len(records), scale)
