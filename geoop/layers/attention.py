"""Attention between token sets of different sizes, on padded batches with masks.

Three kinds, all multi-head, all exact under padding (a padded key contributes nothing, a padded query is
ignored downstream):

- "softmax": scaled dot-product attention, O(M S) per head.
- "linear": GNOT's normalised linear attention: softmax over each head's features of queries and keys, then
  `z = q (k^T v) / (q . sum_s k_s)`, O((M + S) h^2); every query's weights over the keys sum to one.
- "galerkin": no softmax; keys and values layer-normalised per head, `z = q (k^T v) / S` with S the number of
  real (unpadded) keys (Cao, "Choose a Transformer: Fourier or Galerkin").
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

KINDS = ("softmax", "linear", "galerkin")


class MultiHeadAttention(nn.Module):
    """Queries `(B, M, C_q)` attend to keys/values `(B, S, C_kv)` -> `(B, M, hidden)`.

    Args:
        query_channels, kv_channels: input widths. hidden: total width (split over `heads`).
        heads: number of heads. kind: "softmax", "linear" or "galerkin".
    Shapes: forward(q, kv, kv_mask `(B, S)` bool (True = real token) or None, kv_weight `(B, S)` or None) ->
    `(B, M, hidden)`. `kv_weight`: how much each key counts (quadrature weights, so that attention over a
    point set is an integral and a denser mesh region does not count more): softmax adds log w to the logits,
    the linear kinds weight each key's term; all three reduce to the unweighted form for equal weights.
    """

    def __init__(self, query_channels: int, kv_channels: int, hidden: int, heads: int = 4, kind: str = "softmax"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"attention kind must be one of {KINDS}, got {kind!r}")
        if hidden % heads:
            raise ValueError(f"hidden={hidden} is not divisible by heads={heads}")
        self.heads, self.kind, self.head_dim = heads, kind, hidden // heads
        self.q = nn.Linear(query_channels, hidden)
        self.k = nn.Linear(kv_channels, hidden)
        self.v = nn.Linear(kv_channels, hidden)
        self.out = nn.Linear(hidden, hidden)
        if kind == "galerkin":
            self.k_norm = nn.LayerNorm(self.head_dim)
            self.v_norm = nn.LayerNorm(self.head_dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H*D) -> (B, H, T, D)
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, kv_mask: torch.Tensor | None = None,
                kv_weight: torch.Tensor | None = None) -> torch.Tensor:
        queries, keys, values = self._split(self.q(q)), self._split(self.k(kv)), self._split(self.v(kv))
        if kv_weight is not None:  # relative weights: each sample's mean weight of a real key is 1
            real = torch.ones_like(kv_weight) if kv_mask is None else kv_mask.to(kv_weight.dtype)
            kv_weight = kv_weight * real
            kv_weight = kv_weight / (kv_weight.sum(1, keepdim=True) / real.sum(1, keepdim=True).clamp_min(1)
                                     ).clamp_min(1e-30)
            kv_mask = kv_weight > 0 if kv_mask is None else kv_mask & (kv_weight > 0)
        keep = None if kv_mask is None else kv_mask[:, None, :, None].to(keys.dtype)  # (B, 1, S, 1)
        weigh = keep if kv_weight is None else kv_weight[:, None, :, None].to(keys.dtype)  # keys' weights
        if self.kind == "softmax":
            mask = None
            if kv_mask is not None:  # a sample without any key attends to nothing: output 0, not NaN
                empty = ~kv_mask.any(dim=1)
                mask = (kv_mask | empty[:, None])[:, None, None, :]
                if kv_weight is not None:
                    bias = torch.where(mask, kv_weight.clamp_min(1e-30).log()[:, None, None, :], -torch.inf)
                    mask = bias.to(queries.dtype)
            z = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask)
            if kv_mask is not None:
                z = z * (~empty).to(z.dtype)[:, None, None, None]
        elif self.kind == "linear":
            queries, keys = queries.softmax(dim=-1), keys.softmax(dim=-1)
            if keep is not None:
                keys, values = keys * weigh, values * keep
            context = keys.transpose(-2, -1) @ values  # (B, H, D, D)
            norm = queries @ keys.sum(dim=-2, keepdim=True).transpose(-2, -1)  # (B, H, M, 1)
            z = (queries @ context) / norm.clamp_min(1e-12)
        else:
            keys, values = self.k_norm(keys), self.v_norm(values)
            if keep is not None:
                keys, values = keys * weigh, values * keep
                count = kv_mask.sum(dim=1).clamp_min(1).to(keys.dtype)[:, None, None, None]
            else:
                count = torch.tensor(float(kv.shape[1]), dtype=keys.dtype, device=keys.device)
            z = queries @ (keys.transpose(-2, -1) @ values) / count
        b, _, m, _ = z.shape
        return self.out(z.transpose(1, 2).reshape(b, m, self.heads * self.head_dim))


class AttentionBlock(nn.Module):
    """Pre-norm transformer block: `x + Attn(LN(x), LN(kv))`, then `x + FFN(LN(x))` (the FFN may be replaced,
    e.g. by a gated mixture of experts). Built with `kv_channels=None` it is a self-attention block over x
    (called with kv=None; `kv_mask` then masks x's padding), and has no parameters it does not use.

    Shapes: forward(x `(B, M, C)`, kv `(B, S, C_kv)` or None, kv_mask `(B, S)`, kv_weight `(B, S)`, ffn_input)
    -> `(B, M, C)`."""

    def __init__(self, channels: int, kv_channels: int | None = None, heads: int = 4, kind: str = "softmax",
                 ffn: nn.Module | None = None, expansion: int = 2):
        super().__init__()
        self.norm_q = nn.LayerNorm(channels)
        self.norm_kv = None if kv_channels is None else nn.LayerNorm(kv_channels)
        self.attention = MultiHeadAttention(channels, kv_channels or channels, channels, heads, kind)
        self.norm_ffn = nn.LayerNorm(channels)
        self.ffn = ffn or nn.Sequential(nn.Linear(channels, expansion * channels), nn.GELU(),
                                        nn.Linear(expansion * channels, channels))

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None, kv_mask: torch.Tensor | None = None,
                kv_weight: torch.Tensor | None = None, **ffn_inputs: torch.Tensor) -> torch.Tensor:
        if (kv is None) != (self.norm_kv is None):
            raise ValueError("a self-attention block takes no kv; a cross-attention block needs one")
        source = self.norm_q(x) if kv is None else self.norm_kv(kv)
        x = x + self.attention(self.norm_q(x), source, kv_mask, kv_weight)
        h = self.norm_ffn(x)
        return x + (self.ffn(h, **ffn_inputs) if ffn_inputs else self.ffn(h))


class GatedExperts(nn.Module):
    """GNOT's geometric gating: `sum_k g_k(pos) FFN_k(x)` with `g = softmax(MLP(pos))` over K experts, a soft,
    learned partition of space in which each expert specialises on a region.

    Shapes: forward(x `(B, M, C)`, pos `(B, M, d)`) -> `(B, M, C)`."""

    def __init__(self, channels: int, coord_dim: int, n_experts: int = 3, expansion: int = 2):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(coord_dim, 4 * channels), nn.GELU(), nn.Linear(4 * channels, n_experts))
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(channels, expansion * channels), nn.GELU(),
                                                   nn.Linear(expansion * channels, channels))
                                     for _ in range(n_experts))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        g = self.gate(pos).softmax(dim=-1)  # (B, M, K)
        return sum(g[..., k:k + 1] * expert(x) for k, expert in enumerate(self.experts))


def to_padded(values: torch.Tensor, batch: torch.Tensor, n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat `(N, C)` rows with sample ids `batch (N,)` (sorted) -> padded `(B, T, C)` and mask `(B, T)`."""
    counts = torch.bincount(batch, minlength=n_samples)
    t = int(counts.max()) if len(counts) else 0
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(batch), device=batch.device) - starts[batch]
    out = values.new_zeros((n_samples, t, values.shape[1]))
    out[batch, slot] = values
    mask = torch.zeros((n_samples, t), dtype=torch.bool, device=values.device)
    mask[batch, slot] = True
    return out, mask


def from_padded(padded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Inverse of `to_padded`: `(B, T, C)` and mask `(B, T)` -> flat `(N, C)` in sample order."""
    return padded[mask]
