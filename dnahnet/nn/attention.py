"""Causal multi-head attention with partial rotary embedding and optional sliding window.

Parameter names follow the official H-Net `CausalMHA` (`Wqkv`, `out_proj`, no
biases; q/k/v packed as (three, heads, headdim)). Training and prefill use
torch's scaled_dot_product_attention; `step()` reads and extends a KV cache with
a per-row length, so rows of a batch may be at different positions (needed by
H-Net inner stages, where a row advances only when it emits a chunk). Eager on CPU,
with the fused kernels on (`cpu_kernel`, None: DNAHNET_CPU_KERNEL, on unless 0), the split
of the projection and the rotary embedding run as one kernel pass
(`dnahnet.nn.cpu_kernel.rotary_qkv`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dnahnet.nn import cpu_kernel as fused_cpu
from dnahnet.nn.rotary_table import rotary_cos_sin


@dataclass
class AttentionCache:
    """k, v: (B, max_seqlen, heads, headdim); lengths: (B,) positions filled so far."""

    k: torch.Tensor
    v: torch.Tensor
    lengths: torch.Tensor


@dataclass
class WindowCache:
    """What a windowed layer needs to continue a long input segment by segment, exactly: the last
    `window` keys and values (rotated; k, v: (B, <= window, heads, headdim)) and how many
    positions came before. Its size does not grow with the input, unlike `AttentionCache`."""

    k: torch.Tensor
    v: torch.Tensor
    seen: int = 0


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first 2*cos.shape[-1] channels of x (..., heads, headdim); cos/sin broadcast over heads."""
    rd = cos.shape[-1] * 2
    x_rot, x_pass = x[..., :rd], x[..., rd:]
    x1, x2 = x_rot.chunk(2, dim=-1)
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
    rotated = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return torch.cat([rotated, x_pass], dim=-1)


def window_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int) -> torch.Tensor:
    """True where query at q_pos may attend key at k_pos (causal, left window `window`; -1 = unlimited)."""
    allowed = k_pos[None, :] <= q_pos[:, None]
    if window >= 0:
        allowed = allowed & (k_pos[None, :] >= q_pos[:, None] - window)
    return allowed


# Queries per block of the windowed path. Each block attends to its own keys and the ceil(window / S)
# blocks before it, so it computes S * (1 + ceil(window / S)) scores per query, of which at most
# window + 1 are used: smaller blocks waste less but copy the keys more often (1 + ceil(window / S)
# times). At window 512 on the 2-core CPU, blocks of 128 folded into the batch ran 3.5x (5,461
# positions) and 3.2x (1,365) faster than blocks of one window kept in a fifth dimension (one-off
# interleaved timing, best of 9; bench/RESULTS.md, "Inference from 1k to 2^20 bases with the windowed H-Net").
WINDOW_BLOCK = 128


def sliding_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """Causal attention where each query sees itself and the `window` keys before it.

    q, k, v: (B, H, L, Dh). Queries run in blocks of S = min(window, WINDOW_BLOCK) positions
    (at least 1), and each block attends only to its own keys and those of the ceil(window / S)
    blocks before it, so time and memory grow as L * window, not L^2: the point of a window at
    long lengths. Blocks are folded into the batch so SDPA sees 4-D inputs (its fused CPU
    kernel). Equal to masked full attention (`window_mask`) up to summation order.
    """
    bsz, heads, seqlen, dh = q.shape
    S = min(max(window, 1), WINDOW_BLOCK)
    nb, before = -(-seqlen // S), -(-window // S)
    tail, span = nb * S - seqlen, (before + 1) * S
    qb = F.pad(q, (0, 0, 0, tail)).reshape(bsz, heads, nb, S, dh)
    # Keys with `before` blocks of padding in front, each query block's span of them side by side:
    # (B, H, nb, span, Dh). Slices, not `unfold`, so a traced data-dependent length still lowers.
    def spans(t: torch.Tensor) -> torch.Tensor:
        tb = F.pad(t, (0, 0, before * S, tail)).reshape(bsz, heads, nb + before, S, dh)
        return torch.cat([tb[:, :, j : j + nb] for j in range(before + 1)], dim=3)

    k2, v2 = spans(k), spans(v)
    q_pos = torch.arange(nb * S, device=q.device).reshape(nb, S, 1)
    k_pos = (torch.arange(nb, device=q.device)[:, None] * S - before * S + torch.arange(span, device=q.device)).reshape(nb, 1, span)
    allowed = (k_pos <= q_pos) & (k_pos >= q_pos - window) & (k_pos >= 0)  # (nb, S, span)

    def fold(t: torch.Tensor) -> torch.Tensor:  # (B, H, nb, n, Dh) -> (B * nb, H, n, Dh)
        return t.transpose(1, 2).reshape(bsz * nb, heads, t.shape[3], dh)

    out = F.scaled_dot_product_attention(fold(qb), fold(k2), fold(v2), attn_mask=allowed.repeat(bsz, 1, 1)[:, None])
    return out.reshape(bsz, nb, heads, S, dh).transpose(1, 2).reshape(bsz, heads, nb * S, dh)[:, :, :seqlen]


class CausalMHA(nn.Module):
    def __init__(
        self,
        d_model: int,
        num_heads: int,
        rotary_emb_dim: int = 0,
        window_size: int = -1,
        rotary_base: float = 10000.0,
    ) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} not divisible by num_heads {num_heads}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.rotary_emb_dim = rotary_emb_dim
        self.rotary_base = rotary_base
        self.window_size = window_size
        self.Wqkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        self.cpu_kernel: bool | None = None

    def _qkv(self, x: torch.Tensor, positions: torch.Tensor):
        qkv = self.Wqkv(x).unflatten(-1, (3, self.num_heads, self.head_dim))
        if (self.rotary_emb_dim > 0 and qkv.dim() == 5 and positions.dim() == 1 and fused_cpu.rotary_applies(qkv)
                and fused_cpu.in_use(self.cpu_kernel)):
            cos, sin = rotary_cos_sin(positions, self.rotary_emb_dim, self.rotary_base)
            return fused_cpu.rotary_qkv(qkv, cos, sin)
        q, k, v = qkv.unbind(dim=-3)
        if self.rotary_emb_dim > 0:
            cos, sin = rotary_cos_sin(positions, self.rotary_emb_dim, self.rotary_base, dtype=q.dtype)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        return q, k, v

    def forward(
        self, x: torch.Tensor, cache: AttentionCache | WindowCache | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x: (B, L, d) -> (B, L, d). With a fresh `cache`, also stores keys/values (prefill);
        `mask` (B, L) of valid left-aligned positions sets each row's cache length. With a
        `WindowCache`, continues the input its earlier segments began (unpadded rows only)."""
        if isinstance(cache, WindowCache):
            return self._continue(x, cache, mask)
        bsz, seqlen, _ = x.shape
        pos = torch.arange(seqlen, device=x.device)
        q, k, v = self._qkv(x, pos)
        if cache is not None:
            cache.k[:, :seqlen] = k.to(cache.k.dtype)
            cache.v[:, :seqlen] = v.to(cache.v.dtype)
            cache.lengths.copy_(torch.full_like(cache.lengths, seqlen) if mask is None else mask.sum(-1))
        out = self._attend(*(t.transpose(1, 2) for t in (q, k, v)))  # (B, H, L, Dh)
        return self.out_proj(out.transpose(1, 2).reshape(bsz, seqlen, self.d_model))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Causal (windowed) attention of (B, H, L, Dh) queries, keys and values at positions 0..L-1."""
        # Traced (torch.compile), seqlen may be a data-dependent chunk count: take the windowed
        # path whenever there is a window (exact at any length) rather than branch on it.
        if self.window_size >= 0 and (torch.compiler.is_compiling() or self.window_size < q.shape[2] - 1):
            return sliding_window_attention(q, k, v, self.window_size)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def _continue(self, x: torch.Tensor, cache: WindowCache, mask: torch.Tensor | None) -> torch.Tensor:
        """The next segment of a long input: its queries attend to the cached keys of the previous
        `window` positions and their own, as in one pass. The cached keys go in front as positions
        whose (zero) queries are computed and dropped: at most `window` extra rows."""
        bsz, seqlen, _ = x.shape
        if mask is not None and not bool(mask.all()):
            if not bool(mask.any()):  # e.g. an H-Net segment that emitted no chunk: nothing to continue
                return x.new_zeros(bsz, seqlen, self.d_model)
            raise ValueError("a windowed layer continues across segments only for unpadded rows")
        front = cache.k.shape[1]
        q, k, v = self._qkv(x, cache.seen + torch.arange(seqlen, device=x.device))
        keys, values = torch.cat([cache.k.to(k.dtype), k], dim=1), torch.cat([cache.v.to(v.dtype), v], dim=1)
        queries = torch.cat([q.new_zeros(bsz, front, *q.shape[2:]), q], dim=1)
        out = self._attend(*(t.transpose(1, 2) for t in (queries, keys, values)))[:, :, front:]
        keep = min(self.window_size, keys.shape[1])
        cache.k, cache.v = keys[:, keys.shape[1] - keep :].clone(), values[:, values.shape[1] - keep :].clone()
        cache.seen += seqlen
        return self.out_proj(out.transpose(1, 2).reshape(bsz, seqlen, self.d_model))

    def allocate_inference_cache(
        self, batch_size: int, max_seqlen: int, dtype: torch.dtype | None = None
    ) -> AttentionCache | WindowCache:
        """A cache for `max_seqlen` positions (prefill, then `step`), or with `max_seqlen` 0 and a
        window, a `WindowCache` for running a long input segment by segment."""
        device = self.out_proj.weight.device
        dtype = dtype or self.out_proj.weight.dtype
        if max_seqlen == 0 and self.window_size >= 0:
            empty = torch.zeros(batch_size, 0, self.num_heads, self.head_dim, device=device, dtype=dtype)
            return WindowCache(k=empty, v=empty.clone())
        shape = (batch_size, max_seqlen, self.num_heads, self.head_dim)
        return AttentionCache(
            k=torch.zeros(shape, device=device, dtype=dtype),
            v=torch.zeros(shape, device=device, dtype=dtype),
            lengths=torch.zeros(batch_size, dtype=torch.long, device=device),
        )

    def step(self, x: torch.Tensor, cache: AttentionCache, update: torch.Tensor | None = None) -> torch.Tensor:
        """One position per row: x (B, 1, d) -> (B, 1, d); rows advance where `update` (default all)."""
        if isinstance(cache, WindowCache):
            raise ValueError("step() needs a cache allocated for max_seqlen > 0 positions, not a WindowCache")
        bsz = x.shape[0]
        pos = cache.lengths  # (B,) position of this token in each row
        if int(pos.max()) >= cache.k.shape[1]:
            raise RuntimeError(f"attention cache full ({cache.k.shape[1]} positions); allocate a larger max_seqlen")
        q, k, v = self._qkv(x.squeeze(1), pos)  # (B, H, Dh)
        rows = torch.arange(bsz, device=x.device)
        if update is not None:
            rows, pos, k, v = rows[update], pos[update], k[update], v[update]
        # Only advancing rows write their slot; the others' outputs are unused.
        cache.k[rows, pos] = k.to(cache.k.dtype)
        cache.v[rows, pos] = v.to(cache.v.dtype)
        pos = cache.lengths
        kpos = torch.arange(cache.k.shape[1], device=x.device)
        allowed = kpos[None, :] <= pos[:, None]
        if self.window_size >= 0:
            allowed = allowed & (kpos[None, :] >= pos[:, None] - self.window_size)
        keys = cache.k.to(q.dtype).permute(0, 2, 1, 3)  # (B, H, S, Dh)
        values = cache.v.to(q.dtype).permute(0, 2, 1, 3)
        scores = torch.matmul(keys, q.unsqueeze(-1)).squeeze(-1) / self.head_dim**0.5  # (B, H, S)
        scores = scores.masked_fill(~allowed[:, None, :], float("-inf"))
        out = torch.matmul(scores.softmax(dim=-1).unsqueeze(-2), values).squeeze(-2)  # (B, H, Dh)
        cache.lengths.add_(1 if update is None else update.long())
        return self.out_proj(out.reshape(bsz, 1, self.d_model))
