"""Learning-rate plans: how the rate moves over a run's steps, as a pure function of the step, so that a resumed
run (which stores its plan) follows exactly the curve of an uninterrupted one.

A run with a fixed number of epochs knows its steps from the start. A run with a time budget does not: its
first epoch warms the rate up (one-cycle) or holds it (cosine, constant) while the trainer measures the seconds
per step; the plan is then fixed for the steps the rest of the budget affords, and refit at every epoch's end to
the speed measured so far (`refit`), keeping the rate continuous, so that one slow or fast epoch neither cuts the
anneal short nor ends the run early."""
from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, field
from typing import Any

#: one-cycle starts at lr / START_DIV (torch's OneCycleLR default div_factor) and ends near zero
START_DIV = 25.0
END_FACTOR = 1e-5
#: a refit that changes the remaining steps by at most this fraction is not made (the speed's noise)
REFIT_TOLERANCE = 0.02


@dataclass
class SchedulePlan:
    """`factor(step)` multiplies the peak learning rate. `kind`: "onecycle" (linear warm-up from lr/25 over
    `warmup` steps, then cosine to ~0 at `total`), "cosine" (cosine from lr to ~0 between `warmup` and `total`,
    constant before), "constant". `total` None: not fixed yet (a budgeted run in its first epoch); steps up to
    `warmup` do not depend on it. The anneal's progress t in [0, 1] runs linearly from `warmup` to `total`, through
    `knots` [(step, t), ...]: where the plan was refit (t is held there and the rest re-spread to the new total)."""

    kind: str
    warmup: int
    total: int | None
    knots: list[tuple[int, float]] = field(default_factory=list)

    def factor(self, step: int) -> float:
        if self.kind == "constant":
            return 1.0
        if step < self.warmup:
            if self.kind == "cosine":
                return 1.0
            start = 1.0 / START_DIV
            return start + (1.0 - start) * step / max(1, self.warmup)
        if self.total is None:  # the warm-up ran out before the plan was fixed: hold the peak
            return 1.0
        t = self.progress(step)
        return END_FACTOR + (1.0 - END_FACTOR) * 0.5 * (1.0 + math.cos(math.pi * t))

    def progress(self, step: int) -> float:
        """The anneal's progress t at `step` (0 up to `warmup`, 1 from `total` on), piecewise linear through the
        knots."""
        points = [(self.warmup, 0.0), *self.knots, (self.total, 1.0)]
        i = min(bisect.bisect_right(points, step, key=lambda point: point[0]), len(points) - 1)
        (a, ta), (b, tb) = points[i - 1], points[i]
        return min(1.0, ta + (tb - ta) * (step - a) / max(1, b - a))

    def refit(self, step: int, total: int) -> None:
        """Move the end of the anneal to `total` from `step` on, leaving the rate up to `step` as it was (a knot
        holds the progress reached there). A plan already run out, one still warming up, or a change of the
        remaining steps by at most `REFIT_TOLERANCE` is left alone."""
        if self.total is None or step >= self.total or step <= self.warmup:
            return
        if abs(total - self.total) <= REFIT_TOLERANCE * (self.total - step):
            return
        self.knots.append((step, self.progress(step)))
        self.total = max(step + 1, total)

    def state(self) -> dict[str, Any]:
        return asdict(self)


def epoch_plan(kind: str, total: int) -> SchedulePlan:
    """The plan of a run of `total` known steps: one-cycle warms up over the first 30% (as torch's OneCycleLR)."""
    return SchedulePlan(kind, int(round(0.3 * total)) if kind == "onecycle" else 0, max(1, total))


def budget_steps(steps_done: int, spent: float, budget: float, seconds_per_step: float,
                 margin: float = 0.97) -> int:
    """Total steps of a budgeted run: those done plus what `margin` of the remaining seconds affords at the
    measured `seconds_per_step` (the margin keeps a slower-than-measured machine from cutting the anneal)."""
    remaining = max(0.0, budget - spent) * margin
    return steps_done + int(remaining / max(seconds_per_step, 1e-9))
