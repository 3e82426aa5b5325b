"""Spectral convolution: a learned linear map on the lowest Fourier modes of a regular grid."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class SpectralConv(nn.Module):
    """`(K v)(x) = F^-1 (R . F v)(x)`, with R a learned complex tensor on the lowest modes.

    On a grid `(B, C_in, S_1, ..., S_d)` it keeps `modes[i]` frequencies along each of the first d-1 axes
    (half positive, half negative) and `modes[-1] // 2 + 1` along the last (rfft) axis.

    Args:
        in_channels, out_channels: C_in, C_out. modes: per axis (an int for all axes needs `dim`).
        rank: None for a dense R of shape (C_in, C_out, *modes); an int r for a CP-factorised
        R = sum_r a_r (x) b_r (x) c_r over (C_in, C_out, modes), far fewer parameters.
        clip_modes: a grid too small for `modes` uses the lowest modes it has (the others' weights wait for
        a larger grid), so one layer serves grids of different shapes; without it such a grid is an error.
        The transforms are normalised (`norm="forward"`), so a mode's weight means the same amplitude on any
        grid size.
    Shapes:
        `(B, C_in, S_1, ..., S_d) -> (B, C_out, S_1, ..., S_d)`.
    """

    def __init__(self, in_channels: int, out_channels: int, modes: Sequence[int], rank: int | None = None,
                 clip_modes: bool = False):
        super().__init__()
        self.modes = tuple(int(m) for m in modes)
        self.clip_modes = clip_modes
        self.kept = self.modes[:-1] + (self.modes[-1] // 2 + 1,)
        self.in_channels, self.out_channels, self.rank = in_channels, out_channels, rank
        self._bases: dict[tuple, torch.Tensor] = {}
        scale = (2.0 / (in_channels + out_channels)) ** 0.5  # Glorot-like: branches start at full strength
        if rank is None:
            self.weight = nn.Parameter(scale * torch.randn(in_channels, out_channels, *self.kept,
                                                           dtype=torch.cfloat))
        else:
            n_modes = math.prod(self.kept)
            self.factor_in = nn.Parameter(torch.randn(rank, in_channels, dtype=torch.cfloat) / math.sqrt(in_channels))
            self.factor_out = nn.Parameter(torch.randn(rank, out_channels, dtype=torch.cfloat) * scale
                                           * in_channels**0.5)
            self.factor_modes = nn.Parameter(torch.randn(rank, n_modes, dtype=torch.cfloat) / math.sqrt(rank))

    def dense_weight(self) -> torch.Tensor:
        """R as a dense `(C_in, C_out, *kept modes)` complex tensor."""
        if self.rank is None:
            return self.weight
        w = torch.einsum("ri,ro,rm->iom", self.factor_in, self.factor_out, self.factor_modes)
        return w.reshape(self.in_channels, self.out_channels, *self.kept)

    @staticmethod
    def _contract(low: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """`out[b, o, m] = sum_i low[b, i, m] w[i, o, m]` as one batched matmul over the modes m."""
        b, i = low.shape[:2]
        o, modes = weight.shape[1], low.shape[2:]
        # contiguous operands: complex bmm on strided ones is ~40% slower on CPU (measured, with backward)
        lhs = low.reshape(b, i, -1).permute(2, 0, 1).contiguous()  # (M, B, I)
        rhs = weight.reshape(i, o, -1).permute(2, 0, 1).contiguous()  # (M, I, O)
        return torch.bmm(lhs, rhs).permute(1, 2, 0).reshape(b, o, *modes)

    def _indices(self, sizes: Sequence[int]) -> tuple[list[list[int]], list[list[int]]]:
        """Per axis but the last: the grid's frequency indices kept, and where their weights sit in R."""
        grid, weight = [], []
        for m, s in zip(self.modes[:-1], sizes[:-1], strict=True):
            if m > s and not self.clip_modes:
                raise ValueError(f"{m} modes do not fit a grid axis of {s} points")
            used = min(m, s)
            half = used // 2
            grid.append(list(range(0, used - half)) + list(range(s - half, s)))
            weight.append(list(range(0, used - half)) + list(range(m - half, m)))
        return grid, weight

    def _basis(self, kind: str, size: int, freqs: Sequence[int], device: torch.device) -> torch.Tensor:
        """A cached transform matrix of one axis (see `dft_basis`)."""
        key = (kind, size, tuple(freqs), device)
        if key not in self._bases:
            self._bases[key] = dft_basis(kind, size, freqs).to(device)
        return self._bases[key]

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        sizes = v.shape[2:]
        if len(sizes) != len(self.modes):
            raise ValueError(f"expected a {len(self.modes)}D grid, got shape {tuple(v.shape)}")
        last = self.kept[-1]
        if last > sizes[-1] // 2 + 1:
            if not self.clip_modes:
                raise ValueError(f"{self.modes[-1]} modes do not fit a last axis of {sizes[-1]} points")
            last = sizes[-1] // 2 + 1
        index, at = self._indices(sizes)
        freqs = [*index, list(range(last))]
        # the transforms are matrix products restricted to the kept modes: 3x faster than full FFTs on a
        # CPU at the usual 12-16 modes of 64-128 nodes (measured with backward, 2D and 3D)
        low = v.float() @ self._basis("rfft", sizes[-1], freqs[-1], v.device)  # (B, C, ..., 2 * last)
        low = torch.view_as_complex(low.reshape(*low.shape[:-1], last, 2))
        for axis, f in enumerate(index):
            low = _along(low, 2 + axis, self._basis("fft", sizes[axis], f, v.device))
        weight = self.dense_weight()[..., :last]
        for axis, w_idx in enumerate(at):
            if len(w_idx) < weight.shape[2 + axis]:
                weight = weight.index_select(2 + axis, torch.tensor(w_idx, device=v.device))
        out = self._contract(low, weight)
        for axis, f in enumerate(index):
            out = _along(out, 2 + axis, self._basis("ifft", sizes[axis], f, v.device))
        out = torch.view_as_real(out).reshape(*out.shape[:-1], 2 * last)
        return (out @ self._basis("irfft", sizes[-1], freqs[-1], v.device)).to(v.dtype)


def _along(x: torch.Tensor, axis: int, matrix: torch.Tensor) -> torch.Tensor:
    """`x` with its axis `axis` multiplied by `matrix` `(S_in, S_out)`."""
    return torch.movedim(torch.movedim(x, axis, -1) @ matrix, -1, axis)


def dft_basis(kind: str, size: int, freqs: Sequence[int]) -> torch.Tensor:
    """The discrete Fourier transform of one axis of `size` nodes restricted to the frequencies `freqs`, as a
    matrix (normalised as `torch.fft`'s `norm="forward"`: the forward transform divides by `size`).

    kind "rfft": real input -> `(size, 2K)` real, the K coefficients' real and imaginary parts interleaved;
    "fft": `(size, K)` complex; "ifft": `(K, size)` complex; "irfft": `(2K, size)` real, from interleaved
    coefficients of a real signal's one-sided spectrum (the others are their conjugates: weight 2, except the
    constant and the Nyquist frequency).
    """
    n = torch.arange(size, dtype=torch.float64)
    k = torch.as_tensor(list(freqs), dtype=torch.float64)
    angle = 2 * math.pi * torch.outer(k, n) / size  # (K, S)
    if kind == "rfft":
        return torch.stack([angle.cos(), -angle.sin()], 1).reshape(-1, size).T.float() / size
    if kind == "fft":
        return torch.polar(torch.ones_like(angle), -angle).T.to(torch.cfloat) / size
    if kind == "ifft":
        return torch.polar(torch.ones_like(angle), angle).to(torch.cfloat)
    if kind == "irfft":
        twice = torch.where((k == 0) | (2 * k == size), 1.0, 2.0)[:, None]
        return torch.stack([twice * angle.cos(), -twice * angle.sin()], 1).reshape(-1, size).float()
    raise ValueError(f"unknown transform {kind!r}")
