"""Slow, obviously-correct references for the fast numerical paths (float64 tests)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mamba2_reference(m, u: torch.Tensor) -> torch.Tensor:
    """Mamba-2 written position by position straight from its definition (no chunking, no caches)."""
    bsz, seqlen, _ = u.shape
    zxbcdt = u @ m.in_proj.weight.T
    z, xbc, dt = torch.split(zxbcdt, [m.d_inner, m.conv_dim, m.nheads], dim=-1)
    w = m.conv1d.weight.squeeze(1)  # (C, K)
    conv = torch.zeros_like(xbc)
    for t in range(seqlen):
        for k in range(m.d_conv):
            src = t - (m.d_conv - 1) + k
            if src >= 0:
                conv[:, t] += w[:, k] * xbc[:, src]
    xbc = F.silu(conv + m.conv1d.bias)
    x, B, C = torch.split(xbc, [m.d_inner, m.ngroups * m.d_state, m.ngroups * m.d_state], dim=-1)
    dt = F.softplus(dt + m.dt_bias)
    A = -torch.exp(m.A_log)
    heads_per_group = m.nheads // m.ngroups
    state = torch.zeros(bsz, m.nheads, m.headdim, m.d_state, dtype=u.dtype)
    ys = []
    for t in range(seqlen):
        y_t = []
        for h in range(m.nheads):
            g = h // heads_per_group
            xh = x[:, t, h * m.headdim : (h + 1) * m.headdim]
            Bg = B[:, t, g * m.d_state : (g + 1) * m.d_state]
            Cg = C[:, t, g * m.d_state : (g + 1) * m.d_state]
            state[:, h] = torch.exp(dt[:, t, h] * A[h])[:, None, None] * state[:, h] + dt[:, t, h][:, None, None] * xh[:, :, None] * Bg[:, None, :]
            y_t.append((state[:, h] * Cg[:, None, :]).sum(-1) + m.D[h] * xh)
        ys.append(torch.cat(y_t, dim=-1))
    y = torch.stack(ys, dim=1)
    gated = y * F.silu(z)
    gs = m.d_inner // m.ngroups
    gated = gated.reshape(bsz, seqlen, m.ngroups, gs)
    gated = gated / torch.sqrt(gated.pow(2).mean(-1, keepdim=True) + m.norm.eps)
    return (gated.reshape(bsz, seqlen, m.d_inner) * m.norm.weight) @ m.out_proj.weight.T


def attention_reference(m, u: torch.Tensor) -> torch.Tensor:
    """Causal MHA one query at a time, rotary by explicit 2-D rotations of channel pairs (i, i + rd/2)."""
    bsz, seqlen, d = u.shape
    qkv = (u @ m.Wqkv.weight.T).reshape(bsz, seqlen, 3, m.num_heads, m.head_dim)
    q, k, v = qkv[:, :, 0].clone(), qkv[:, :, 1].clone(), qkv[:, :, 2]
    rd = m.rotary_emb_dim
    for t in range(seqlen):
        for i in range(rd // 2):
            theta = t / (m.rotary_base ** (2 * i / rd))
            c, s = torch.cos(torch.tensor(theta, dtype=u.dtype)), torch.sin(torch.tensor(theta, dtype=u.dtype))
            for tensor in (q, k):
                a, b = tensor[:, t, :, i].clone(), tensor[:, t, :, i + rd // 2].clone()
                tensor[:, t, :, i] = a * c - b * s
                tensor[:, t, :, i + rd // 2] = a * s + b * c
    out = torch.zeros(bsz, seqlen, m.num_heads, m.head_dim, dtype=u.dtype)
    for t in range(seqlen):
        lo = 0 if m.window_size < 0 else max(0, t - m.window_size)
        scores = torch.einsum("bhd,bshd->bhs", q[:, t], k[:, lo : t + 1]) / m.head_dim**0.5
        out[:, t] = torch.einsum("bhs,bshd->bhd", scores.softmax(-1), v[:, lo : t + 1])
    return out.reshape(bsz, seqlen, d) @ m.out_proj.weight.T


def dechunk_reference(z: torch.Tensor, boundary_mask: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Dechunk by an explicit loop over positions: EMA updated at each boundary, held in between."""
    bsz, seqlen = boundary_mask.shape
    out = torch.zeros(bsz, seqlen, z.shape[-1], dtype=z.dtype)
    for b in range(bsz):
        last = torch.zeros(z.shape[-1], dtype=z.dtype)
        k = -1
        for t in range(seqlen):
            if boundary_mask[b, t]:
                k += 1
                P = p[b, t].clamp(1e-4, 1 - 1e-4)
                last = P * z[b, k] + (1 - P) * last
            out[b, t] = last
    return out
