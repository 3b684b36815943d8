"""The chunked state-space-duality (SSD) scan, in pure PyTorch.

Computes, per head h and step t (the Mamba-2 recurrence with inputs already
multiplied by dt):

    state_t = exp(a_t) * state_{t-1} + x_t (outer) B_t
    y_t     = state_t . C_t

in chunks of `chunk_size`: a quadratic, matmul-bound part inside each chunk
(with a stable segment-sum for the decays) and a state-passing recurrence
between chunks. The same routine serves Mamba-2 layers and the dechunk EMA.
`ssd_sequential` is the obvious step-by-step reference the tests compare with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def segsum(a: torch.Tensor) -> torch.Tensor:
    """out[..., i, j] = sum_{k=j+1..i} a[..., k] for i >= j, -inf above the diagonal.

    Built from masked cumulative sums rather than differences of one cumsum, so
    no large terms cancel (the stable form).
    """
    T = a.size(-1)
    a = a[..., None].expand(*a.shape, T)  # [..., i, j] = a_i
    strict = torch.tril(torch.ones(T, T, dtype=torch.bool, device=a.device), diagonal=-1)
    s = a.masked_fill(~strict, 0.0).cumsum(dim=-2)
    lower = torch.tril(torch.ones(T, T, dtype=torch.bool, device=a.device), diagonal=0)
    return s.masked_fill(~lower, float("-inf"))


def ssd_chunked(
    x: torch.Tensor,
    log_decay: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked SSD scan for any length.

    x: (b, l, h, p), already scaled by dt; log_decay: (b, l, h), dt*A <= 0;
    B, C: (b, l, g, n) with h divisible by g; initial_state: (b, h, p, n).
    Returns y (b, l, h, p) and the final state (b, h, p, n).
    """
    b, l, h, p = x.shape
    g, n = B.shape[-2:]
    r = h // g
    pad = (-l) % chunk_size
    if pad:
        # Zero input and zero log-decay leave the carried state untouched.
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        log_decay = F.pad(log_decay, (0, 0, 0, pad))
        B = F.pad(B, (0, 0, 0, 0, 0, pad))
        C = F.pad(C, (0, 0, 0, 0, 0, pad))
    c = x.shape[1] // chunk_size
    q = chunk_size
    xc = x.reshape(b, c, q, g, r, p)
    Bc = B.reshape(b, c, q, g, n)
    Cc = C.reshape(b, c, q, g, n)
    A = log_decay.reshape(b, c, q, g, r).permute(0, 3, 4, 1, 2)  # (b, g, r, c, q)
    A_cum = A.cumsum(dim=-1)

    # 1. The state each chunk leaves behind, starting from zero.
    decay_to_end = torch.exp(A_cum[..., -1:] - A_cum)  # (b, g, r, c, q)
    states = torch.einsum("bclgn,bgrcl,bclgrp->bcgrpn", Bc, decay_to_end, xc)

    # 2. Pass states between chunks (a short recurrence over c+1 chunk states).
    if initial_state is None:
        init = torch.zeros(b, 1, g, r, p, n, dtype=x.dtype, device=x.device)
    else:
        init = initial_state.reshape(b, 1, g, r, p, n).to(x.dtype)
    states = torch.cat([init, states], dim=1)  # (b, c+1, g, r, p, n)
    states = _linear_recurrence(states, F.pad(A_cum[..., -1], (1, 0)))
    carried, final = states[:, :-1], states[:, -1]

    # 3. Outputs, a slice of chunks at a time so the (q x q) decay blocks of a long
    # input never all exist at once (memory and cache grow with the slice, not l).
    per_slice = max(1, INTRA_SLICE_POSITIONS // q)
    ys = [
        _chunk_outputs(xc[:, i:i + per_slice], A[..., i:i + per_slice, :], A_cum[..., i:i + per_slice, :],
                       Bc[:, i:i + per_slice], Cc[:, i:i + per_slice], carried[:, i:i + per_slice])
        for i in range(0, c, per_slice)
    ]
    y = (ys[0] if len(ys) == 1 else torch.cat(ys, dim=1)).reshape(b, c * q, h, p)[:, :l]
    return y, final.reshape(b, h, p, n)


# Positions whose intra-chunk outputs are computed together in `ssd_chunked`.
INTRA_SLICE_POSITIONS = 16384


def _chunk_outputs(xc: torch.Tensor, A: torch.Tensor, A_cum: torch.Tensor, Bc: torch.Tensor, Cc: torch.Tensor,
                   carried: torch.Tensor) -> torch.Tensor:
    """y of a run of chunks: the quadratic part inside each chunk plus the state carried into it.

    xc: (b, c, q, g, r, p); A, A_cum: (b, g, r, c, q); Bc, Cc: (b, c, q, g, n);
    carried: (b, c, g, r, p, n). Returns (b, c, q, g, r, p).
    """
    # y_t = sum_{s<=t} C_t.B_s * exp(sum_{s<k<=t} a_k) * x_s  +  C_t . (exp(A_cum_t) * carried)
    CB = torch.einsum("bclgn,bcsgn->bcgls", Cc, Bc)  # (b, c, g, q, q)
    decay = torch.exp(segsum(A))  # (b, g, r, c, q, q)
    scores = CB.permute(0, 2, 1, 3, 4).unsqueeze(2) * decay  # (b, g, r, c, l, s)
    y = torch.einsum("bgrcls,bcsgrp->bclgrp", scores, xc)
    return y + torch.einsum("bclgn,bcgrpn,bgrcl->bclgrp", Cc, carried, torch.exp(A_cum))


# Chunk states passed densely in one matmul up to this many; beyond, in blocks.
STATE_PASS_BLOCK = 64


def _linear_recurrence(u: torch.Tensor, a: torch.Tensor, block: int = STATE_PASS_BLOCK) -> torch.Tensor:
    """out[t] = exp(a[t]) * out[t-1] + u[t], out[-1] = 0, over the chunk axis.

    u: (b, T, g, r, p, n); a: (b, g, r, T). The dense form is a (T x T) decay
    matmul, quadratic in T (the number of chunks): at 65k bases and chunks of 64
    it costs more than the rest of the scan. Beyond `block` items the dense form
    runs inside blocks and a short Python loop carries state between blocks, so
    the cost grows as T * block.
    """
    T = u.shape[1]
    if T <= block:
        return torch.einsum("bgrzc,bcgrpn->bzgrpn", torch.exp(segsum(a)), u)
    pad = (-T) % block
    # Zero input and zero log-decay after the end leave the state unchanged.
    u = F.pad(u, (0, 0, 0, 0, 0, 0, 0, 0, 0, pad))
    a = F.pad(a, (0, pad))
    m = u.shape[1] // block
    ub = u.reshape(u.shape[0], m, block, *u.shape[2:])  # (b, m, k, g, r, p, n)
    ab = a.reshape(*a.shape[:3], m, block)  # (b, g, r, m, k)
    local = torch.einsum("bgrjzc,bjcgrpn->bjzgrpn", torch.exp(segsum(ab)), ub)
    into_block = torch.exp(ab.cumsum(dim=-1)).permute(0, 3, 4, 1, 2)[..., None, None]  # (b, m, k, g, r, 1, 1)
    carry = torch.zeros_like(local[:, 0, 0])
    blocks = []
    for j in range(m):
        out_j = local[:, j] + into_block[:, j] * carry[:, None]
        blocks.append(out_j)
        carry = out_j[:, -1]
    return torch.cat(blocks, dim=1)[:, :T]


def ssd_sequential(
    x: torch.Tensor,
    log_decay: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step-by-step reference of `ssd_chunked` (slow; for tests and benchmarks)."""
    b, l, h, p = x.shape
    g, n = B.shape[-2:]
    r = h // g
    Bh = B.repeat_interleave(r, dim=2)
    Ch = C.repeat_interleave(r, dim=2)
    state = torch.zeros(b, h, p, n, dtype=x.dtype, device=x.device) if initial_state is None else initial_state
    ys = []
    for t in range(l):
        state = torch.exp(log_decay[:, t])[:, :, None, None] * state + x[:, t, :, :, None] * Bh[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", state, Ch[:, t]))
    return torch.stack(ys, dim=1), state
