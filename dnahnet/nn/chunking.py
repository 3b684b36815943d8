"""Dynamic chunking: the routing module, chunk and dechunk layers, STE and ratio loss.

Routing: p_t = clamp((1 - cos(W_q x_{t-1}, W_k x_t)) / 2, 0, 1), p_0 = 1;
boundary b_t = [p_t > 0.5] (a tie is not a boundary); confidence c_t = max(p_t, 1 - p_t).
Chunk keeps the boundary positions in order. Dechunk runs an EMA over chunk outputs,
z̄_k = P_k ẑ_k + (1 - P_k) z̄_{k-1} with P clamped to [1e-4, 1 - 1e-4], as a chunked
scan (the SSD of a one-state SSM, sharing Mamba-2's chunk-state pass), then gives each
position the z̄ of the last chunk that starts at or before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dnahnet.nn import cpu_kernel as fused_cpu
from dnahnet.nn.ssd import decay_matrix, full_precision, linear_recurrence

P_MIN = 1e-4
NORMALIZE_EPS = 1e-12  # F.normalize's: each vector is scaled by 1 / max(|v|, eps)
EMA_CHUNK = 64  # small: the intra-chunk part of an EMA is pure overhead (2·M·chunk·D FLOPs)


@dataclass
class RoutingOutput:
    """Per-position routing decisions of one stage, in that stage's coordinates.

    boundary_prob p_t (B, L); boundary_mask b_t (B, L) bool; selected_probs c_t (B, L);
    mask (B, L) bool of valid positions, or None when all are valid.
    """

    boundary_prob: torch.Tensor
    boundary_mask: torch.Tensor
    selected_probs: torch.Tensor
    mask: torch.Tensor | None = None

    def stats(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(boundary count, probability sum with gradient, valid count) for the ratio loss.

        Kept as sums so data-parallel training can all-reduce them into global means.
        """
        b = self.boundary_mask.float()
        p = self.boundary_prob.float()
        if self.mask is None:
            return b.sum().detach(), p.sum(), torch.tensor(float(b.numel()), device=b.device)
        m = self.mask.float()
        return (b * m).sum().detach(), (p * m).sum(), m.sum()


def realised_compression(routing: list[RoutingOutput]) -> list[float]:
    """L/M per routed stage of one forward pass: valid positions entering the stage per chunk it emits."""
    ratios = []
    for out in routing:
        boundaries, _, valid = out.stats()
        ratios.append(float(valid) / max(float(boundaries), 1.0))
    return ratios


def ratio_loss(F_frac: torch.Tensor, G_frac: torch.Tensor, target: float) -> torch.Tensor:
    """N/(N-1) * ((N-1) F G + (1-F)(1-G)); F carries no gradient. Minimal (=1) at F = G = 1/N."""
    N = float(target)
    return N / (N - 1.0) * ((N - 1.0) * F_frac.detach() * G_frac + (1.0 - F_frac.detach()) * (1.0 - G_frac))


class _STE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: D102
        return torch.ones_like(x)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        return grad


def ste(x: torch.Tensor) -> torch.Tensor:
    """1 in the forward pass; the identity's gradient in the backward pass."""
    return _STE.apply(x)


@dataclass
class RoutingCache:
    last_hidden: torch.Tensor  # (B, D)
    has_seen: torch.Tensor  # (B,) bool
    position: torch.Tensor  # (B,) long, positions seen (used by fixed chunking)


def _routing_cache(batch_size: int, d: int, device, dtype) -> RoutingCache:
    return RoutingCache(
        last_hidden=torch.zeros(batch_size, d, device=device, dtype=dtype),
        has_seen=torch.zeros(batch_size, dtype=torch.bool, device=device),
        position=torch.zeros(batch_size, dtype=torch.long, device=device),
    )


def _output(p: torch.Tensor, mask: torch.Tensor | None) -> RoutingOutput:
    b = p > 0.5
    if mask is not None:
        b = b & mask
    return RoutingOutput(p, b, torch.maximum(p, 1.0 - p), mask)


def valid_lengths(mask: torch.Tensor | None, bsz: int, seqlen: int, device) -> torch.Tensor:
    """Valid (left-aligned) positions per row, (B,) long."""
    return torch.full((bsz,), seqlen, device=device) if mask is None else mask.sum(-1)


def last_valid(x: torch.Tensor, lengths: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """Each row's value at its last valid position of x (B, L, D), or `previous` (B, D) for a row with none."""
    last = x[torch.arange(x.shape[0], device=x.device), (lengths - 1).clamp(min=0)].to(previous.dtype)
    return torch.where((lengths > 0)[:, None], last, previous)


def _fill_cache(cache: RoutingCache, h: torch.Tensor, mask: torch.Tensor | None) -> None:
    """Advance the cache past this forward's valid positions; a row with none keeps its state."""
    lengths = valid_lengths(mask, h.shape[0], h.shape[1], h.device)
    cache.last_hidden.copy_(last_valid(h, lengths, cache.last_hidden))
    cache.has_seen.copy_(cache.has_seen | (lengths > 0))
    cache.position.add_(lengths)


def cosine(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Cosine similarity over the last dimension with each vector scaled by 1 / max(|v|, eps), the values of
    F.normalize(q) . F.normalize(k) without the two normalized tensors: norms and a dot product per row."""
    q_norm = torch.linalg.vector_norm(q, dim=-1).clamp_min(NORMALIZE_EPS)
    k_norm = torch.linalg.vector_norm(k, dim=-1).clamp_min(NORMALIZE_EPS)
    return (q * k).sum(-1) / (q_norm * k_norm)


def _prob_of(cos: torch.Tensor) -> torch.Tensor:
    """p = clamp((1 - cos) / 2, 0, 1): 0 for the same direction, 1 for opposite ones."""
    return torch.clamp((1.0 - cos) / 2.0, 0.0, 1.0)


class RoutingModule(nn.Module):
    """Cosine-similarity boundary predictor with identity-initialised projections."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.q_proj_layer = nn.Linear(d_model, d_model, bias=False)
        self.k_proj_layer = nn.Linear(d_model, d_model, bias=False)
        with torch.no_grad():
            self.q_proj_layer.weight.copy_(torch.eye(d_model))
            self.k_proj_layer.weight.copy_(torch.eye(d_model))
        self.q_proj_layer.weight._no_reinit = True
        self.k_proj_layer.weight._no_reinit = True
        self.cpu_kernel: bool | None = None

    def _prob(self, prev: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        # In the weights' dtype (fp32) even under bf16 autocast: p_t decides the boundaries.
        dtype = self.q_proj_layer.weight.dtype
        with full_precision(cur):
            return _prob_of(cosine(self.q_proj_layer(prev.to(dtype)), self.k_proj_layer(cur.to(dtype))))

    def _adjacent_probs(self, h: torch.Tensor) -> torch.Tensor:
        """p_t for t = 1..L-1 of h (B, L, D), as `_prob(h[:, :-1], h[:, 1:])` computes them, from one projection of
        the whole of h (q and k weights side by side): no copies of the two shifted slices, one GEMM instead of
        two, and, eager on CPU with the fused kernels on, the similarities in one kernel pass."""
        dtype, d = self.q_proj_layer.weight.dtype, self.d_model
        with full_precision(h):
            qk = F.linear(h.to(dtype), torch.cat([self.q_proj_layer.weight, self.k_proj_layer.weight]))
            if fused_cpu.cosine_applies(qk) and fused_cpu.in_use(self.cpu_kernel):
                return _prob_of(fused_cpu.adjacent_cosine(qk, NORMALIZE_EPS))
            return _prob_of(cosine(qk[:, :-1, :d], qk[:, 1:, d:]))

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None, cache: RoutingCache | None = None) -> RoutingOutput:
        """h (B, L, D). With a `cache` this continues from the positions it has seen (p_0 compares
        with its last hidden state, not 1) and then advances it: a fresh cache gives the same
        decisions as none, and segments run one after another give those of one pass."""
        p = F.pad(self._adjacent_probs(h), (1, 0), value=1.0)
        if cache is not None:
            first = self._prob(cache.last_hidden.to(h.dtype), h[:, 0])
            p = torch.cat([torch.where(cache.has_seen, first, p[:, 0])[:, None], p[:, 1:]], dim=1)
            _fill_cache(cache, h, mask)
        return _output(p, mask)

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int, device, dtype=None) -> RoutingCache:
        return _routing_cache(batch_size, self.d_model, device, dtype or self.q_proj_layer.weight.dtype)

    def step(self, h: torch.Tensor, cache: RoutingCache, update: torch.Tensor | None = None) -> RoutingOutput:
        """h (B, 1, D) -> per-row decisions (B,); caches advance where `update`."""
        cur = h.squeeze(1)
        p = torch.where(cache.has_seen, self._prob(cache.last_hidden.to(cur.dtype), cur), torch.ones((), dtype=cur.dtype, device=cur.device))
        keep = torch.ones_like(cache.has_seen) if update is None else update
        cache.last_hidden.copy_(torch.where(keep[:, None], cur.to(cache.last_hidden.dtype), cache.last_hidden))
        cache.has_seen.copy_(cache.has_seen | keep)
        cache.position.add_(keep.long())
        return _output(p, None)


class FixedRouting(nn.Module):
    """The fixed-chunk baseline: a boundary every k positions (p = 1 there, 0 elsewhere)."""

    def __init__(self, d_model: int, k: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.k = int(k)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None, cache: RoutingCache | None = None) -> RoutingOutput:
        bsz, seqlen, _ = h.shape
        pos = torch.arange(seqlen, device=h.device).expand(bsz, seqlen)
        if cache is not None:  # continue the grid from the positions the cache has seen
            pos = pos + cache.position[:, None]
            _fill_cache(cache, h, mask)
        p = (pos % self.k == 0).to(h.dtype if h.dtype == torch.float64 else torch.float32)
        return _output(p, mask)

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int, device, dtype=None) -> RoutingCache:
        return _routing_cache(batch_size, self.d_model, device, dtype or torch.float32)

    def step(self, h: torch.Tensor, cache: RoutingCache, update: torch.Tensor | None = None) -> RoutingOutput:
        dtype = h.dtype if h.dtype == torch.float64 else torch.float32
        p = (cache.position % self.k == 0).to(dtype)
        keep = torch.ones_like(cache.has_seen) if update is None else update
        cache.has_seen.copy_(cache.has_seen | keep)
        cache.position.add_(keep.long())
        return _output(p, None)


def chunk_count(counts: torch.Tensor, seqlen: int) -> int:
    """Width of the next stage: the longest row's boundary count, at least 1 (an all-padding batch
    keeps one masked chunk). Under torch.compile (capture_scalar_outputs) this is an unbacked
    size; the checks bound it to 1..seqlen so the stages after it trace without a graph break."""
    m = counts.max().clamp(min=1).item() if counts.numel() else 1
    if torch.compiler.is_compiling():  # eagerly m is a plain int; torch._check's first call imports sympy (~0.5-1 s)
        torch._check(m >= 1)
        torch._check(m <= max(seqlen, 1))
    return m


class ChunkLayer(nn.Module):
    """Keep the boundary positions of each row, in order, right-padded to the longest row."""

    def forward(self, h: torch.Tensor, boundary_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seqlen = h.shape[1]
        counts = boundary_mask.sum(-1)
        m = chunk_count(counts, seqlen)
        order = torch.arange(seqlen, device=h.device)[None, :] + (~boundary_mask).long() * seqlen
        idx = torch.argsort(order, dim=1)[:, :m]
        chunks = torch.gather(h, 1, idx[..., None].expand(-1, -1, h.shape[-1]))
        next_mask = torch.arange(m, device=h.device)[None, :] < counts[:, None]
        return chunks, next_mask


def boundary_probs_of_chunks(p: torch.Tensor, boundary_mask: torch.Tensor, m: int) -> torch.Tensor:
    """P_k: the boundary probability at each chunk's first position, (B, M)."""
    seqlen = p.shape[1]
    order = torch.arange(seqlen, device=p.device)[None, :] + (~boundary_mask).long() * seqlen
    idx = torch.argsort(order, dim=1)[:, :m]
    return torch.gather(p, 1, idx)


def ema_scan(z: torch.Tensor, P: torch.Tensor, chunk_size: int = EMA_CHUNK) -> torch.Tensor:
    """z̄_k = P_k z_k + (1 - P_k) z̄_{k-1} (z̄_{-1} = 0) for z (B, M, D), P (B, M): the SSD scan of a
    one-state, one-head SSM (dt = -log(1 - P), x = z / dt, A = -1, B = P, C = 1), so dt*A = log(1 - P)
    and x*dt*B = P z and nothing is divided.

    Written for its shape rather than through `ssd_chunked`: every matmul is a 3-D batched one,
    which Inductor lowers for a traced, data-dependent M (the generic scan's state-size-1 matmuls
    it cannot, torch 2.13). Chunk states pass through `linear_recurrence` (decay matmuls,
    or eagerly step by step where batch x D reaches `ssd.STEPWISE_MIN_STATE`).
    """
    bsz, m, d = z.shape
    compute = torch.float64 if z.dtype == torch.float64 else torch.float32
    Pf = P.to(compute)
    q = chunk_size
    c = -(-m // q)
    pad = c * q - m
    u = Pf[..., None] * z.to(compute)  # the input each step adds, (B, M, D)
    log_keep = torch.log1p(-Pf)  # log(1 - P) <= 0
    if torch.compiler.is_compiling() or pad:  # zero input and zero log-decay: the state carries over
        u = F.pad(u, (0, 0, 0, pad))
        log_keep = F.pad(log_keep, (0, pad))
    a_cum = log_keep.reshape(bsz * c, q).cumsum(-1)  # (B c, q)
    decay = decay_matrix(a_cum)  # (B c, q, q)
    uc = u.reshape(bsz * c, q, d)
    within = decay @ uc  # from zero at each chunk start
    to_end = torch.exp(a_cum[:, -1:] - a_cum)[:, None, :]  # (B c, 1, q)
    states = (to_end @ uc).reshape(bsz, c, d)  # what each chunk leaves, from zero
    states = torch.cat([states.new_zeros(bsz, 1, d), states], dim=1)
    chunk_keep = F.pad(a_cum[:, -1].reshape(bsz, c), (1, 0))  # (B, c + 1)
    carried = linear_recurrence(states.reshape(bsz, c + 1, 1, 1, d, 1), chunk_keep.reshape(bsz, 1, 1, c + 1),
                                length_is_data_dependent=True)  # the EMA runs over a chunk count
    carried = carried.reshape(bsz, c + 1, d)[:, :-1].reshape(bsz * c, 1, d)  # state entering each chunk
    y = within + torch.exp(a_cum)[..., None] * carried
    return y.reshape(bsz, c * q, d)[:, :m]


def ema_sequential(z: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """Explicit loop reference for `ema_scan` (tests)."""
    out, last = [], torch.zeros_like(z[:, 0])
    for k in range(z.shape[1]):
        last = P[:, k, None] * z[:, k] + (1 - P[:, k, None]) * last
        out.append(last)
    return torch.stack(out, dim=1)


@dataclass
class DeChunkCache:
    last_value: torch.Tensor  # (B, D)


class DeChunkLayer(nn.Module):
    """Expand chunk outputs back to every position with the boundary-probability EMA."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model

    def forward(
        self,
        z: torch.Tensor,
        boundary_mask: torch.Tensor,
        boundary_prob: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: DeChunkCache | None = None,
    ) -> torch.Tensor:
        """z (B, M, D) chunk outputs -> (B, L, D). With a `cache` the EMA starts from its last value,
        and positions before this call's first boundary take that value (segments run one after
        another give one pass's result); the cache then holds the value at the last valid position."""
        # fp32 before the clamp: in bf16, 1 - 1e-4 rounds to 1 and log1p(-P) becomes -inf.
        probs = boundary_prob if boundary_prob.dtype == torch.float64 else boundary_prob.float()
        P = boundary_probs_of_chunks(probs, boundary_mask, z.shape[1]).clamp(P_MIN, 1 - P_MIN)
        with full_precision(z):  # the EMA's scan matmuls in fp32 under bf16 autocast too
            smooth = ema_scan(z, P)
        plug = torch.cumsum(boundary_mask.long(), dim=1)  # chunks started so far: 1 + index of this position's chunk
        if cache is None:
            plug = (plug - 1).clamp(min=0)
        else:
            start = cache.last_value.to(smooth.dtype)
            smooth = smooth + torch.exp(torch.cumsum(torch.log1p(-P.to(smooth.dtype)), dim=1))[..., None] * start[:, None]
            smooth = torch.cat([start[:, None], smooth], dim=1)  # index 0: before this call's first boundary
        out = torch.gather(smooth, 1, plug[..., None].expand(-1, -1, smooth.shape[-1]))
        if cache is not None:
            lengths = valid_lengths(mask, *boundary_mask.shape, z.device)
            cache.last_value.copy_(last_valid(out, lengths, cache.last_value))
        return out.to(z.dtype)

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int, device, dtype=None) -> DeChunkCache:
        return DeChunkCache(torch.zeros(batch_size, self.d_model, device=device, dtype=dtype or torch.float32))

    def step(
        self,
        z: torch.Tensor,
        boundary_mask: torch.Tensor,
        boundary_prob: torch.Tensor,
        cache: DeChunkCache,
        update: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """z (B, 1, D) inner output (used only where boundary_mask) -> (B, 1, D)."""
        compute = torch.float64 if z.dtype == torch.float64 else torch.float32  # as in forward: no bf16 clamp
        P = boundary_prob.to(compute).clamp(P_MIN, 1 - P_MIN)[:, None]
        last = cache.last_value.to(compute)
        new = torch.where(boundary_mask[:, None], P * z.squeeze(1).to(compute) + (1 - P) * last, last)
        keep = torch.ones_like(boundary_mask) if update is None else update
        cache.last_value.copy_(torch.where(keep[:, None], new.to(cache.last_value.dtype), cache.last_value))
        return new.to(z.dtype).unsqueeze(1)
