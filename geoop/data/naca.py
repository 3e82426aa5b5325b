"""NACA 4- and 5-digit airfoil sections (Abbott & von Doenhoff, "Theory of Wing Sections", ch. 6).

Thickness (closed trailing edge, chord 1):
    y_t(x) = 5 t (0.2969 sqrt(x) - 0.1260 x - 0.3516 x^2 + 0.2843 x^3 - 0.1036 x^4)
Camber lines:
    4-digit (m = max camber, p = its position):  y_c = m/p^2 (2 p x - x^2) for x < p,
                                                 y_c = m/(1-p)^2 (1 - 2p + 2 p x - x^2) for x >= p;
    5-digit standard (design lift cl_i, camber position x_f):
                                                 y_c = k1/6 (x^3 - 3 r x^2 + r^2 (3 - r) x) for x < r,
                                                 y_c = k1 r^3 / 6 (1 - x) for x >= r,
      r from x_f = r (1 - sqrt(r / 3)) (where dy_c/dx = 0), k1 so that thin-airfoil theory gives cl_i;
    5-digit reflex:  y_c = k1/6 ((x - r)^3 - k21 (1 - r)^3 x - r^3 x + r^3) for x < r,
                     y_c = k1/6 (k21 (x - r)^3 - k21 (1 - r)^3 x - r^3 x + r^3) for x >= r,
      k21 = (3 (r - x_f)^2 - r^3) / (1 - r)^3, r so that the quarter-chord moment is zero, k1 from cl_i.
The surface is y_c +- y_t applied normal to the camber line. Thin-airfoil quantities (Glauert's
coefficients A_n = 2/pi int_0^pi dy_c/dx cos(n theta) dtheta, x = (1 - cos theta)/2): cl_i = pi A_1 at the
ideal angle, c_m,c/4 = pi/4 (A_2 - A_1).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq

#: Gauss-Legendre nodes for the Glauert integrals (the camber slopes are smooth on each side of r)
_THETA_NODES, _THETA_WEIGHTS = np.polynomial.legendre.leggauss(400)


@dataclass(frozen=True)
class NACA:
    """A NACA section by its design parameters (fractions of the chord).

    `series` 4: `camber` m, `position` p of the max camber, `thickness` t.
    `series` 5: `design_cl` (0.15 per unit of the first digit), `position` x_f of the max camber (half the
    second and third digits / 20), `reflex` (the third digit is 1), `thickness` t."""

    series: int
    thickness: float
    camber: float = 0.0
    position: float = 0.0
    design_cl: float = 0.0
    reflex: bool = False

    @classmethod
    def from_digits(cls, digits: str) -> NACA:
        """`"0012"`, `"2412"`, `"23012"`, `"23112"` -> the section they name."""
        if len(digits) == 4 and digits.isdigit():
            return cls(4, int(digits[2:]) / 100, int(digits[0]) / 100, int(digits[1]) / 10)
        if len(digits) == 5 and digits.isdigit() and digits[2] in "01":
            return cls(5, int(digits[3:]) / 100, design_cl=0.15 * int(digits[0]),
                       position=int(digits[1]) / 20, reflex=digits[2] == "1")
        raise ValueError(f"{digits!r} is not a NACA 4-digit (e.g. 2412) or 5-digit (e.g. 23012) designation")

    @property
    def name(self) -> str:
        """The designation, e.g. `NACA 2412` (parameters off the digit grid are rounded for the name)."""
        t = round(self.thickness * 100)
        if self.series == 4:
            return f"NACA {round(self.camber * 100)}{round(self.position * 10)}{t:02d}"
        return f"NACA {round(self.design_cl / 0.15)}{round(self.position * 20)}{int(self.reflex)}{t:02d}"

    def camber_slope(self, x: np.ndarray) -> np.ndarray:
        """dy_c/dx at chord positions x in [0, 1]."""
        return self._camber(np.asarray(x, dtype=np.float64), derivative=True)

    def camber_line(self, x: np.ndarray) -> np.ndarray:
        """y_c at chord positions x in [0, 1]."""
        return self._camber(np.asarray(x, dtype=np.float64), derivative=False)

    def _camber(self, x: np.ndarray, derivative: bool) -> np.ndarray:
        if self.series == 4:
            m, p = self.camber, self.position
            if m == 0 or p == 0:
                return np.zeros_like(x)
            if derivative:
                return np.where(x < p, 2 * m / p**2 * (p - x), 2 * m / (1 - p) ** 2 * (p - x))
            return np.where(x < p, m / p**2 * (2 * p * x - x**2), m / (1 - p) ** 2 * (1 - 2 * p + 2 * p * x - x**2))
        if self.design_cl == 0:
            return np.zeros_like(x)
        r, k1, k21 = five_digit_constants(self.design_cl, self.position, self.reflex)
        return k1 * _five_digit_shape(x, r, k21, self.reflex, derivative)

    def _cut(self) -> float:
        """Where the camber line changes formula."""
        if self.series == 4:
            return self.position
        return five_digit_constants(self.design_cl, self.position, self.reflex)[0] if self.design_cl else 0.0

    def thin_airfoil_cl(self, alpha_deg: float) -> float:
        """Thin-airfoil-theory lift coefficient cl = 2 pi (alpha - alpha_0) = pi (2 A_0 + A_1)."""
        a = glauert(self.camber_slope, 1, self._cut())
        return float(np.pi * (2 * (np.radians(alpha_deg) + a[0]) + a[1]))

    def surface(self, n_per_side: int = 130) -> np.ndarray:
        """`(2 n_per_side, 2)` closed outline, counter-clockwise (the trailing edge at (1, 0) first and once,
        the upper side, the leading edge at (0, 0), the lower side); cosine spacing in x (fine at both
        edges)."""
        beta = np.linspace(0.0, np.pi, n_per_side + 1)
        x = (1 - np.cos(beta)) / 2
        t = self.thickness
        yt = 5 * t * (0.2969 * np.sqrt(x) - 0.1260 * x - 0.3516 * x**2 + 0.2843 * x**3 - 0.1036 * x**4)
        yc, angle = self.camber_line(x), np.arctan(self.camber_slope(x))
        upper = np.stack([x - yt * np.sin(angle), yc + yt * np.cos(angle)], 1)
        lower = np.stack([x + yt * np.sin(angle), yc - yt * np.cos(angle)], 1)
        outline = np.concatenate([upper[::-1][:-1], lower[:-1]])  # TE -> upper -> LE -> lower, TE once
        outline[0] = (1.0, 0.0)  # the closed-trailing-edge polynomial ends at y_t(1) = 0 up to rounding
        return outline


def _five_digit_shape(x: np.ndarray, r: float, k21: float, reflex: bool, derivative: bool) -> np.ndarray:
    """A 5-digit camber line (or its slope) for k1 = 1."""
    if not reflex:
        if derivative:
            return np.where(x < r, (3 * x**2 - 6 * r * x + r**2 * (3 - r)) / 6, -(r**3) / 6)
        return np.where(x < r, (x**3 - 3 * r * x**2 + r**2 * (3 - r) * x) / 6, r**3 / 6 * (1 - x))
    if derivative:
        front = 3 * (x - r) ** 2 - k21 * (1 - r) ** 3 - r**3
        back = 3 * k21 * (x - r) ** 2 - k21 * (1 - r) ** 3 - r**3
    else:
        front = (x - r) ** 3 - k21 * (1 - r) ** 3 * x - r**3 * x + r**3
        back = k21 * (x - r) ** 3 - k21 * (1 - r) ** 3 * x - r**3 * x + r**3
    return np.where(x < r, front, back) / 6


def glauert(slope, n: int, cut: float = 0.0) -> np.ndarray:
    """Glauert coefficients `(n + 1,)` of a camber line with slope `slope(x)` at zero angle of attack:
    A_0 = -1/pi int dy_c/dx dtheta, A_k = 2/pi int dy_c/dx cos(k theta) dtheta (theta in [0, pi],
    x = (1 - cos theta) / 2), by Gauss-Legendre quadrature on each side of `cut` (where the slope's formula
    changes)."""
    pieces = [(0.0, np.pi)]
    if 0 < cut < 1:
        theta_cut = float(np.arccos(1 - 2 * cut))
        pieces = [(0.0, theta_cut), (theta_cut, np.pi)]
    out = np.zeros(n + 1)
    for lo, hi in pieces:
        theta = (hi - lo) / 2 * _THETA_NODES + (hi + lo) / 2
        w = (hi - lo) / 2 * _THETA_WEIGHTS * slope((1 - np.cos(theta)) / 2)
        out[0] -= w.sum() / np.pi
        out[1:] += 2 / np.pi * (w[None] * np.cos(np.arange(1, n + 1)[:, None] * theta)).sum(1)
    return out


@lru_cache(maxsize=256)
def five_digit_constants(design_cl: float, position: float, reflex: bool) -> tuple[float, float, float]:
    """(r, k1, k2/k1) of a 5-digit camber line with design lift `design_cl` and max camber at `position`:
    r from x_f = r (1 - sqrt(r/3)) (standard) or from a zero quarter-chord moment, A_1 = A_2 (reflex), then
    k1 = cl_i / (pi A_1(k1 = 1))."""
    xf = position

    def k21_of(r: float) -> float:
        return (3 * (r - xf) ** 2 - r**3) / (1 - r) ** 3 if reflex else 0.0

    def coefficients(r: float) -> np.ndarray:
        return glauert(lambda x: _five_digit_shape(x, r, k21_of(r), reflex, True), 2, r)

    if reflex:
        if not 0.0 < xf <= 0.3:
            raise ValueError(f"no reflex 5-digit camber line has its maximum at {xf:.3f} chords with a zero moment "
                             "(the series spans about 0.05-0.3)")
        r = brentq(lambda r: float(np.diff(coefficients(r)[1:])[0]), xf * 1.01, min(0.9, 3 * xf + 0.3))
    else:
        r = brentq(lambda r: r * (1 - np.sqrt(r / 3)) - xf, 1e-9, 1.0)
    return float(r), float(design_cl / (np.pi * coefficients(r)[1])), float(k21_of(r))
