"""Random smooth fields defined everywhere in space (not on a grid), so that the same sample can be evaluated
on any mesh: a finite Fourier series with Gaussian coefficients decaying like (1 + |k|^2)^(-alpha/2)."""
from __future__ import annotations

import itertools

import numpy as np


class FourierField:
    """`f(x) = mean + scale * sum_k a_k cos(2 pi k.x / period + phi_k)`, normalised to unit variance over
    random phases. Evaluate at `(N, d)` points with `field(x) -> (N,)`.

    Args:
        rng: source of the coefficients. dim: 2 or 3. max_wavenumber: largest |k_i| per axis.
        alpha: smoothness (larger: smoother). period: spatial period (> domain size to avoid periodicity).
    """

    def __init__(self, rng: np.random.Generator, dim: int, max_wavenumber: int = 4, alpha: float = 2.5,
                 period: float = 2.0, scale: float = 1.0, mean: float = 0.0):
        ks = np.array([k for k in itertools.product(range(-max_wavenumber, max_wavenumber + 1), repeat=dim)
                       if any(k)], dtype=np.float64)
        decay = (1 + (ks**2).sum(1)) ** (-alpha / 2)
        amp = rng.normal(size=len(ks)) * decay
        self.wavevectors = 2 * np.pi * ks / period
        self.amplitudes = amp * np.sqrt(2) / np.sqrt((decay**2).sum())
        self.phases = rng.uniform(0, 2 * np.pi, size=len(ks))
        self.scale, self.mean = scale, mean

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """`(..., d)` -> `(...)`."""
        arg = np.tensordot(x, self.wavevectors.T, axes=1) + self.phases
        return self.mean + self.scale * (np.cos(arg) @ self.amplitudes)

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """`(..., d)` -> `(..., d)`, exact."""
        arg = np.tensordot(x, self.wavevectors.T, axes=1) + self.phases
        return -self.scale * (np.sin(arg) * self.amplitudes) @ self.wavevectors
