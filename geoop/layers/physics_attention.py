"""Physics attention (Transolver's slice attention): points are softly assigned to a few learned slices, each
slice becomes one token (the membership-weighted mean of its points), the tokens attend to each other, and every
point reads the updated tokens back through its own memberships. Cost is linear in the number of points, and
no graph or grid is needed.

The pooling and the read-back are separate steps, so points that should not shape the tokens (query points of
a prediction) can read them without changing them: their outputs then depend only on the input points and on
themselves."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SliceAttention(nn.Module):
    """Slice tokens of a padded point set and the read-back of any points from them.

    Args:
        channels: C (split over `heads`). heads: H. slices: S learned slices per head.
    Shapes:
        pool(h `(B, N, C)`, weight `(B, N)` (0 for padding; quadrature weights or 1)) -> tokens `(B, H, S, D)`;
        read(h `(B, M, C)`, tokens) -> `(B, M, C)`; forward(h, weight) = read(h, pool(h, weight)).
    """

    def __init__(self, channels: int, heads: int = 8, slices: int = 32):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels={channels} is not divisible by heads={heads}")
        self.heads, self.head_dim = heads, channels // heads
        self.to_slice_input = nn.Linear(channels, channels)
        self.to_values = nn.Linear(channels, channels)
        self.to_logits = nn.Linear(self.head_dim, slices)
        nn.init.orthogonal_(self.to_logits.weight)  # distinct slices from the start
        self.log_temperature = nn.Parameter(torch.full((1, heads, 1, 1), float(torch.log(torch.tensor(0.5)))))
        self.qkv = nn.Linear(self.head_dim, 3 * self.head_dim, bias=False)
        self.out = nn.Linear(channels, channels)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, H*D) -> (B, H, N, D)
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def memberships(self, h: torch.Tensor) -> torch.Tensor:
        """`(B, H, N, S)` soft slice memberships of points `h (B, N, C)` (each row sums to 1)."""
        logits = self.to_logits(self._heads(self.to_slice_input(h)))
        return torch.softmax(logits / self.log_temperature.exp().clamp_min(0.05), dim=-1)

    def pool(self, h: torch.Tensor, weight: torch.Tensor, memberships: torch.Tensor | None = None) -> torch.Tensor:
        """Slice tokens `(B, H, S, D)` after attention among them (`memberships` of h, if already computed)."""
        weight = weight / weight.sum(1, keepdim=True).clamp_min(1e-30)  # each sample's weights sum to 1
        w = (self.memberships(h) if memberships is None else memberships) * weight[:, None, :, None]
        values = self._heads(self.to_values(h))  # (B, H, N, D)
        tokens = w.transpose(-1, -2) @ values / (w.sum(dim=2)[..., None] + 1e-9)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        return F.scaled_dot_product_attention(q, k, v)

    def read(self, h: torch.Tensor, tokens: torch.Tensor, memberships: torch.Tensor | None = None) -> torch.Tensor:
        """Points `h (B, M, C)` read `tokens (B, H, S, D)` through their memberships -> `(B, M, C)`."""
        z = (self.memberships(h) if memberships is None else memberships) @ tokens  # (B, H, M, D)
        b, _, m, _ = z.shape
        return self.out(z.transpose(1, 2).reshape(b, m, -1))

    def forward(self, h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        memberships = self.memberships(h)
        return self.read(h, self.pool(h, weight, memberships), memberships)


class SliceBlock(nn.Module):
    """Pre-norm block `h + SliceAttention(LN h)`, then `h + MLP(LN h)`. Other points (queries of a prediction)
    take the same two steps with `read`, from the tokens of `h` only (they never shape them).

    Shapes: forward(h `(B, N, C)`, weight `(B, N)`) -> (h, tokens `(B, H, S, D)`); read(queries `(B, M, C)`,
    tokens) -> `(B, M, C)`."""

    def __init__(self, channels: int, heads: int = 8, slices: int = 32, mlp_ratio: float = 1.0):
        super().__init__()
        hidden = max(1, int(channels * mlp_ratio))
        self.norm_attention = nn.LayerNorm(channels)
        self.attention = SliceAttention(channels, heads, slices)
        self.norm_mlp = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))

    def _step(self, h: torch.Tensor, tokens: torch.Tensor, normed: torch.Tensor,
              memberships: torch.Tensor | None = None) -> torch.Tensor:
        h = h + self.attention.read(normed, tokens, memberships)
        return h + self.mlp(self.norm_mlp(h))

    def forward(self, h: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        normed = self.norm_attention(h)
        memberships = self.attention.memberships(normed)
        tokens = self.attention.pool(normed, weight, memberships)
        return self._step(h, tokens, normed, memberships), tokens

    def read(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self._step(queries, tokens, self.norm_attention(queries))
