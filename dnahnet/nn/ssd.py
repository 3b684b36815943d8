"""The chunked state-space-duality (SSD) scan, in PyTorch.

Computes, per head h and step t (the Mamba-2 recurrence with inputs already
multiplied by dt):

    state_t = exp(a_t) * state_{t-1} + x_t (outer) B_t
    y_t     = state_t . C_t

in chunks of `chunk_size`: a quadratic, matmul-bound part inside each chunk and
a state-passing recurrence between chunks. Inside a chunk the decays form a
(q x q) matrix per head; where heads share B/C and their decay over a chunk is
moderate, that matrix is factored into row and column scalings instead
(`_ssd_factored`), so the heads of a group share one (q x q) block. Fast-decaying
heads, per-head B/C and traced graphs build the per-head matrix (`_ChunkOutput`).
Between chunks, states pass step by step eagerly where they are as large as Mamba-2's
(`_StepwiseRecurrence`), otherwise as decay matmuls, past 64 states in two levels of blocks
so the cost stays linear in length (`linear_recurrence`).
Unless turned off (DNAHNET_CPU_KERNEL=0), float32 scans on CPU run on the fused C++ kernel where it
builds (`dnahnet.nn.cpu_kernel`, `_fused_scan`).
Mamba-2 layers use this scan; the dechunk EMA has its own (`chunking.ema_scan`).
`ssd_sequential` is the obvious step-by-step reference the tests compare with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dnahnet.nn import cpu_kernel as fused_cpu


def segsum(a: torch.Tensor, transposed: bool = False) -> torch.Tensor:
    """out[..., i, j] = sum_{k=j+1..i} a[..., k] for i >= j, -inf above the diagonal.

    Built from masked cumulative sums rather than differences of one cumsum, so
    no large terms cancel (the stable form). `transposed=True` returns out[..., j, i],
    computed in that layout (a cumsum along the last axis) rather than as a transposed
    view: a copy made by `.contiguous()` is a layout Inductor may choose to skip.
    """
    T = a.size(-1)
    ones = torch.ones(T, T, dtype=torch.bool, device=a.device)
    if transposed:  # [..., j, i] = a_i, summed along i; masks built upper-triangular, not as .mT views
        s = a[..., None, :].expand(*a.shape, T).masked_fill(~torch.triu(ones, diagonal=1), 0.0).cumsum(dim=-1)
        return s.masked_fill(~torch.triu(ones), float("-inf"))
    s = a[..., None].expand(*a.shape, T).masked_fill(~torch.tril(ones, diagonal=-1), 0.0).cumsum(dim=-2)
    return s.masked_fill(~torch.tril(ones), float("-inf"))


def ssd_chunked(
    x: torch.Tensor,
    log_decay: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    initial_state: torch.Tensor | None = None,
    length_is_data_dependent: bool = False,
    cpu_kernel: bool | None = None,
    dt: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked SSD scan for any length.

    x: (b, l, h, p), scaled by the step sizes dt (b, l, h): by the scan where `dt` is given, else already;
    log_decay: (b, l, h), dt*A <= 0;
    B, C: (b, l, g, n) with h divisible by g; initial_state: (b, h, p, n); `length_is_data_dependent`:
    l may be a chunk count, traced as data-dependent (`linear_recurrence`); `cpu_kernel`: compute
    the chunk states and outputs with the fused CPU kernel where it applies (`dnahnet.nn.cpu_kernel`; None asks
    the environment, DNAHNET_CPU_KERNEL: on unless 0), which scales x by `dt` inside (no dt * x tensor, forward or backward).
    Returns y (b, l, h, p) and the final state (b, h, p, n). `chunk_size` is the model's;
    eagerly on CPU the scan computes in shorter chunks where that is faster (`compute_chunk_size`).

    Eager, heads that share B/C take the factored form (`_ssd_factored`) where
    their decays allow. The per-head path lays every tensor out chunk-major with
    the position axis next to last, (b, c, g, r, q, .), so each einsum of the
    textbook form is one batched matmul over contiguous blocks.
    """
    b, l, h, p = x.shape
    g, n = B.shape[-2:]
    r = h // g
    q = compute_chunk_size(chunk_size, x, "factored")
    c = -(-l // q)  # chunks; as a ceiling division a traced length's range carries over to c
    pad = c * q - l
    fused_q = compute_chunk_size(q, x, "per_head")
    on_kernel = runs_on_fused_kernel(cpu_kernel, x, B, fused_q)
    if dt is not None and not on_kernel:
        x, dt = x * dt[..., None], None
    # Zero input and zero log-decay leave the carried state untouched. Traced, the length may
    # be data-dependent (a chunk count): pad unconditionally (by zero is a no-op) rather than
    # branch on it; eager, skip the copies when nothing is padded.
    if torch.compiler.is_compiling() or pad:
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        log_decay = F.pad(log_decay, (0, 0, 0, pad))
        B = F.pad(B, (0, 0, 0, 0, 0, pad))
        C = F.pad(C, (0, 0, 0, 0, 0, pad))
        dt = None if dt is None else F.pad(dt, (0, 0, 0, pad))
    if on_kernel:
        # It takes every head: at head and state size 64 its per-head form outran the factored one for shared
        # B/C (1.37-1.40x), at 32 a Mamba-2 block showed no detectable difference (bench/RESULTS.md).
        # In float32 under bf16 autocast too: the kernel takes float32.
        with full_precision(x):
            y, final = _fused_scan(x, log_decay, B, C, fused_q, initial_state, dt)
    else:
        scanned = None if torch.compiler.is_compiling() else _ssd_factored(x, log_decay, B, C, q, initial_state)
        y, final = scanned or _per_head_scan(x, log_decay, B, C, q, initial_state, length_is_data_dependent)
    return y[:, :l], final


# Eager on CPU, the longest chunk each intra-chunk form computes in (bench/RESULTS.md).
CPU_CHUNK_SIZES = {"factored": 128, "per_head": 64}


def compute_chunk_size(chunk_size: int, x: torch.Tensor, form: str = "factored") -> int:
    """The chunk the scan computes in: the model's `chunk_size`, eagerly on CPU cut to a divisor of
    it no longer than CPU_CHUNK_SIZES[form].

    The chunk only blocks the computation (any chunk gives the same result up to rounding), and
    its best size depends on the hardware and the form. GPU kernels favour 256; on the project's
    CPU (bench/ssd_chunks.py, bench/RESULTS.md) the per-head form took 1.13-1.41x the time at 128
    and 1.61-2.15x at 256 that it took at 64, and the factored form 0.91-1.13x at 64 and 1.06-1.31x
    at 256 what it took at 128. Traced graphs keep the model's chunk, so a compiled model's shapes
    stay those it was compiled for.
    """
    if x.device.type != "cpu" or torch.compiler.is_compiling():
        return chunk_size
    return next(d for d in range(min(chunk_size, CPU_CHUNK_SIZES[form]), 0, -1) if chunk_size % d == 0)


def full_precision(t: torch.Tensor):
    """Autocast off on `t`'s device: what must stay in its inputs' precision under bf16 autocast (the fused
    scan; routing, the residual projection and the dechunk EMA in `chunking`)."""
    return torch.autocast(t.device.type, enabled=False)


def runs_on_fused_kernel(asked: bool | None, x: torch.Tensor, B: torch.Tensor, q: int) -> bool:
    """Whether the scan runs on the fused CPU kernel: asked for (or, with None, by the environment),
    applicable to these tensors, and built. Traced, it is used only if already built (`compile_layers`
    builds it before tracing a CPU model)."""
    return fused_cpu.applies(x, B, q) and fused_cpu.in_use(asked)


def _fused_scan(
    x: torch.Tensor, log_decay: torch.Tensor, B: torch.Tensor, C: torch.Tensor, q: int,
    initial_state: torch.Tensor | None, dt: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`ssd_chunked` on the fused CPU kernel (`dnahnet.nn.cpu_kernel.scan`), on inputs whose length is a
    multiple of q: the chunk states, their passing from chunk to chunk (as `_per_head_scan` passes them with
    `linear_recurrence`) and the chunk outputs in one call. The kernel reads x, B and C where they lie, and
    scales x by dt (None: x is scaled)."""
    b, l, h, p = x.shape
    g, n = B.shape[-2:]
    r = h // g
    c = l // q
    A_cum = log_decay.reshape(b, c, q, g, r).permute(0, 1, 3, 4, 2).cumsum(dim=-1)  # (b, c, g, r, q)
    if initial_state is None:
        initial = x.new_zeros(b, g, r, n, p)
    else:
        initial = initial_state.reshape(b, g, r, p, n).mT.to(x.dtype)
    y, passed = fused_cpu.scan(C, B, A_cum, x, dt, initial)
    return y, passed[:, -1].mT.reshape(b, h, p, n)


def _pass_chunk_states(
    states: torch.Tensor, A_cum: torch.Tensor, initial_state: torch.Tensor | None, length_is_data_dependent: bool,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The state carried into each chunk and the final one, (b, c+1, g, r, n, p), from the states the chunks
    leave behind from zero (b, c, g, r, n, p), the within-chunk cumulative log-decay A_cum (b, c, g, r, q)
    and the initial state (b, h, p, n) or None (zeros), held in `dtype` (the scan input's: under autocast
    the states may come out of a low-precision matmul, and the concatenation promotes them)."""
    b, c, g, r, n, p = states.shape
    if initial_state is None:
        init = torch.zeros(b, 1, g, r, n, p, dtype=dtype, device=states.device)
    else:
        init = initial_state.reshape(b, 1, g, r, p, n).mT.to(dtype)
    # (b, g, r, c+1). A 3-D transpose, not a 4-D permute: the latter's backward trips a
    # channels-last stride check that cannot decide a traced, data-dependent c (torch 2.13).
    last = A_cum[..., -1].reshape(b, c, g * r).transpose(1, 2).reshape(b, g, r, c)
    return linear_recurrence(torch.cat([init, states], dim=1), F.pad(last, (1, 0)), length_is_data_dependent)


def _per_head_scan(
    x: torch.Tensor, log_decay: torch.Tensor, B: torch.Tensor, C: torch.Tensor, q: int,
    initial_state: torch.Tensor | None, length_is_data_dependent: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`ssd_chunked` with a (q x q) decay block per head, on inputs whose length is a multiple of q;
    computed in chunks of `compute_chunk_size(q, x, "per_head")`, a divisor of q."""
    q = compute_chunk_size(q, x, "per_head")
    b, l, h, p = x.shape
    g, n = B.shape[-2:]
    r = h // g
    c = l // q
    # Laid out once, contiguous: CPU bmm runs permuted operands a matrix at a time or copies
    # them at every matmul, and elementwise results keep their input's (permuted) strides.
    xc = x.reshape(b, c, q, g, r, p).permute(0, 1, 3, 4, 2, 5).contiguous()  # (b, c, g, r, q, p)
    Bc = B.reshape(b, c, q, g, 1, n).permute(0, 1, 3, 4, 2, 5).contiguous()  # (b, c, g, 1, q, n)
    Cc = C.reshape(b, c, q, g, 1, n).permute(0, 1, 3, 4, 2, 5).contiguous()
    A_cum = log_decay.reshape(b, c, q, g, r).permute(0, 1, 3, 4, 2).cumsum(dim=-1)  # (b, c, g, r, q)

    # 1. The state each chunk leaves behind, starting from zero: sum_s decay(s->end) B_s x_s^T, held
    # transposed, (n x p): every matmul that makes or reads it then has its position axis where the
    # chunk-major operands keep it, so no gradient comes back as a transposed (p x q) block.
    decay_to_end = torch.exp(A_cum[..., -1:] - A_cum)
    states = Bc.mT @ (xc * decay_to_end[..., None])  # (b, c, g, r, n, p)

    # 2. Pass states between chunks (a short recurrence over c+1 chunk states).
    states = _pass_chunk_states(states, A_cum, initial_state, length_is_data_dependent, x.dtype)
    carried, final = states[:, :-1], states[:, -1]

    # 3. Outputs, a slice of chunks at a time so the (q x q) decay blocks of a long
    # input never all exist at once (memory and cache grow with the slice, not l).
    # A traced graph (torch.compile) takes one slice: its length may be an unbacked size.
    if torch.compiler.is_compiling():
        slices = [slice(None)]
    else:
        per_slice = max(1, INTRA_SLICE_POSITIONS // q)
        slices = [slice(i, i + per_slice) for i in range(0, c, per_slice)]
    ys = [_ChunkOutput.apply(Cc[:, s], Bc[:, s], A_cum[:, s], xc[:, s], carried[:, s]) for s in slices]
    y = ys[0] if len(ys) == 1 else torch.cat(ys, dim=1)  # (b, c, g, r, q, p)
    return y.permute(0, 1, 4, 2, 3, 5).reshape(b, l, h, p), final.mT.reshape(b, h, p, n)


# Largest exponent the factored scan lets a decay factor reach: e^40 ~ 2e17 keeps every product and
# gradient of fp32 (and bf16) activations far from overflow.
FACTORED_EXPONENT_LIMIT = 40.0


def _ssd_factored(
    x: torch.Tensor, log_decay: torch.Tensor, B: torch.Tensor, C: torch.Tensor, q: int,
    initial_state: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The chunked scan with each chunk's decay matrix factored, or None where that is unsafe.

    Inside a chunk exp(A_l - A_s) = exp(A_l - R) * exp(R - A_s) for any reference R (here the
    cumulative log-decay at the chunk's middle), so ((C B^T) * decay) x becomes
    rows * (tril(C B^T) @ (cols * x)): no (q x q) block per head, one per group shared by its
    heads, and every tensor keeps the input's position-major layout, so the heads of a group
    are the columns of one matmul. Exact in exact arithmetic; in floating point the factors
    grow as e^(exponent), so a head takes this form only when none of its factors' exponents
    exceeds FACTORED_EXPONENT_LIMIT (its log-decay spans at most twice that in any chunk).
    With one group of B/C, the heads that decay faster than that run through `_per_head_scan`
    and the rest through this one; otherwise (no head within the limit, several
    groups with one too fast, per-head B/C, fp16 autocast, other dtypes) this returns None and
    the caller runs `_per_head_scan` for all. Eager only: the check reads the heads' largest
    exponents on the host.

    Shapes as `ssd_chunked`, with l already a multiple of q. Returns y (b, l, h, p) and the
    final state (b, h, p, n).
    """
    if x.dtype not in (torch.float32, torch.float64) or B.shape[-2] == x.shape[-2]:
        return None  # per-head B/C: no (q x q) block to share; the per-head path was no slower there
    if x.device.type == "cuda" and torch.is_autocast_enabled("cuda") and torch.get_autocast_dtype("cuda") == torch.float16:
        return None
    b, l, h, _ = x.shape
    A_cum = log_decay.reshape(b, l // q, q, h).cumsum(dim=2)  # (b, c, q, h), position-major like x
    ref = A_cum[:, :, q // 2 : q // 2 + 1]
    with torch.no_grad():  # each head's largest exponent of a row or column factor
        reach = torch.maximum(A_cum[:, :, :1] - ref, ref - A_cum[:, :, -1:]).amax(dim=(0, 1, 2))
    within = (reach <= FACTORED_EXPONENT_LIMIT).tolist()
    if all(within):
        return _factored_scan(x, A_cum, ref, B, C, initial_state)
    if not any(within) or B.shape[-2] > 1:
        return None
    fits = [i for i, ok in enumerate(within) if ok]
    rest = [i for i, ok in enumerate(within) if not ok]
    heads = [torch.tensor(ids, device=x.device) for ids in (fits, rest)]
    init = [None, None] if initial_state is None else [initial_state.index_select(1, i) for i in heads]
    y_fit, final_fit = _factored_scan(x.index_select(2, heads[0]), A_cum.index_select(3, heads[0]),
                                      ref.index_select(3, heads[0]), B, C, init[0])
    y_rest, final_rest = _per_head_scan(x.index_select(2, heads[1]), log_decay.index_select(2, heads[1]), B, C, q, init[1])
    order = torch.argsort(torch.cat(heads))  # back to the heads' own order
    return torch.cat([y_fit, y_rest], dim=2).index_select(2, order), torch.cat([final_fit, final_rest], dim=1).index_select(1, order)


def _factored_scan(
    x: torch.Tensor, A_cum: torch.Tensor, ref: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    initial_state: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`_ssd_factored` once its heads are known to fit: A_cum (b, c, q, h) the within-chunk
    cumulative log-decay, ref (b, c, 1, h) its value at each chunk's middle."""
    b, l, h, p = x.shape
    g, n = B.shape[-2:]
    r = h // g
    c, q = A_cum.shape[1:3]

    def by_group(t: torch.Tensor) -> torch.Tensor:  # (b, c, q, g, k) -> (b, c, g, q, k): a view when g == 1
        return t.reshape(b, c, q, g, -1).transpose(2, 3)

    def by_head(t: torch.Tensor) -> torch.Tensor:  # (b, c, g, q, r p) -> (b, c, q, h, p)
        return t.transpose(2, 3).reshape(b, c, q, h, p)

    xs = x.reshape(b, c, q, h, p) * torch.exp(ref - A_cum)[..., None]  # columns' factor
    Bg, Cg = by_group(B), by_group(C)  # (b, c, g, q, n)
    causal = torch.ones(q, q, dtype=torch.bool, device=x.device).tril_()
    scores = (Cg @ Bg.mT).masked_fill_(~causal, 0.0)  # (b, c, g, q, q), shared by the group's heads
    y = by_head(scores @ by_group(xs)) * torch.exp(A_cum - ref)[..., None]  # rows' factor

    # State each chunk leaves behind from zero: sum_s exp(A_last - A_s) B_s x_s^T = exp(A_last - R) * B^T xs,
    # laid out (n, r, p): the group's heads side by side as the columns of the matmuls that make and read it.
    A_last = A_cum[:, :, -1]  # (b, c, h)
    states = (Bg.mT @ by_group(xs)).reshape(b, c, g, n, r, p) * torch.exp(A_last - ref[:, :, 0]).reshape(b, c, g, 1, r, 1)
    init = (torch.zeros(b, 1, g, n, r, p, dtype=x.dtype, device=x.device) if initial_state is None
            else initial_state.reshape(b, 1, g, r, p, n).permute(0, 1, 2, 5, 3, 4).to(x.dtype))
    chunk_log_decay = F.pad(A_last.transpose(1, 2).reshape(b, g, r, c), (1, 0))
    # The recurrence sees (b, c+1, g, r, n, p) as a view and keeps its strides (step by step, in place).
    passed = linear_recurrence(torch.cat([init, states], dim=1).transpose(3, 4), chunk_log_decay).transpose(3, 4)
    carried, final = passed[:, :-1], passed[:, -1]  # (b, c, g, n, r, p), (b, g, n, r, p)
    # Carried state read out: y_l += exp(A_l) C_l . state, the group's heads as columns of one matmul.
    y = y + by_head(Cg @ carried.reshape(b, c, g, n, r * p)) * torch.exp(A_cum)[..., None]
    return y.reshape(b, l, h, p), final.permute(0, 1, 3, 4, 2).reshape(b, h, p, n)


# Positions whose intra-chunk outputs are computed together in `ssd_chunked`.
INTRA_SLICE_POSITIONS = 16384


def decay_matrix(A_cum: torch.Tensor) -> torch.Tensor:
    """exp(A_cum[l] - A_cum[s]) for l >= s, 0 above the diagonal: (..., q) -> (..., q, q).

    One broadcast difference of the cumulative sum (as mamba_ssm's kernels do)
    instead of the masked cumulative sum of `segsum`: a chunk is short, so the
    difference loses at most |A_cum| * eps in the exponent. Masked to -inf before
    the exponential so nothing above the diagonal overflows.
    """
    q = A_cum.shape[-1]
    upper = torch.ones(q, q, dtype=torch.bool, device=A_cum.device).triu_(1)
    return (A_cum[..., :, None] - A_cum[..., None, :]).masked_fill_(upper, float("-inf")).exp_()


class _ChunkOutput(torch.autograd.Function):
    """y = ((C B^T) * decay) x + exp(A_cum) * (C carried) in each chunk: the outputs from inside
    the chunk and from the state carried into it, with one hand-written backward for both.

    C, B: (..., g, 1, q, n) with a singleton head axis; A_cum: (..., g, r, q);
    x: (..., g, r, q, p); carried: (..., g, r, n, p). Autograd through the same expressions
    keeps three (q x q) blocks per chunk and head (decay, C B^T and their product), recomputes
    the product in backward and makes separate passes for each term's scaling and sum; this
    keeps two blocks, adds the carried read-out into the output in place and takes its
    gradient for the decay from dC's carried part (sum_n C dC = sum_p y_carried dy).
    Per-head B/C forward+backward: 1.05x (two threads) and 1.08x (one thread) the speed of the
    two-term autograd form (bench/RESULTS.md).
    """

    @staticmethod
    def forward(ctx, C, B, A_cum, x, carried):
        decay = decay_matrix(A_cum)
        CB = C @ B.mT
        scores = CB.mul_(decay) if CB.shape == decay.shape and CB.dtype == decay.dtype else CB * decay
        rows = torch.exp(A_cum)[..., None]
        # Under autocast the matmuls return low precision; the sum is taken in x's dtype, as
        # an out-of-place sum of the two terms would promote it.
        y = (scores @ x).to(x.dtype)
        y.addcmul_((C @ carried).to(x.dtype), rows)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(C, B, decay, scores, x, carried, rows)
        return y

    @staticmethod
    def backward(ctx, dy):
        C, B, decay, scores, x, carried, rows = ctx.saved_tensors
        # Backward runs outside autocast: work in the inputs' dtype throughout. The incoming
        # gradient is a permuted view of the output's layout; CPU bmm runs such operands one
        # matrix at a time with a copy each (10x slower), so lay it out once.
        dtype = x.dtype
        dy = dy.to(dtype).contiguous()
        C, B, scores, carried = C.to(dtype), B.to(dtype), scores.to(dtype), carried.to(dtype)
        shared = dy.shape[-3] > 1  # heads sharing B/C add up their gradients
        dx = scores.mT @ dy
        dscores = dy @ x.mT
        dCB = dscores * decay
        if shared:
            dCB = dCB.sum(dim=-3, keepdim=True)
        dseg = dscores.mul_(scores)  # d/d(A_cum[l] - A_cum[s]); zero above the diagonal
        dA_cum = dseg.sum(-1) - dseg.sum(-2)
        dy_rows = dy * rows
        dC_carried = dy_rows @ carried.mT  # (..., r, q, n)
        dA_cum += (dC_carried * C).sum(-1)  # the carried term's exp(A_cum) factor
        dcarried = C.mT @ dy_rows
        if shared:
            dC_carried = dC_carried.sum(dim=-3, keepdim=True)
        return dC_carried.add_(dCB @ B), dCB.mT @ C, dA_cum, dx, dcarried


def _dense_recurrence(u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """`linear_recurrence` as one (T x T) decay matmul per head.

    Only 3-D tensors, transposes and contiguous batched matmuls: with a traced, data-dependent
    T, Inductor cannot order the strides of einsum's permuted operands, nor tell apart the
    equal strides of size-1 axes next to (T x T) ones (torch 2.13).
    """
    b, T, g, r, p, n = u.shape
    a = a.reshape(b * g * r, T)
    if g * r == 1:  # one head (the dechunking EMA): both operands as they lie, no transpose
        out = torch.exp(segsum(a)) @ u.reshape(b, T, p * n)
        return out.reshape(b, T, g, r, p, n)
    decay_t = torch.exp(segsum(a, transposed=True))  # (b g r, c, z)
    heads = u.reshape(b, T, g * r * p * n).transpose(1, 2).reshape(b * g * r, p * n, T)
    out = heads @ decay_t  # (b g r, p n, z)
    return out.reshape(b, g * r * p * n, T).transpose(1, 2).reshape(b, T, g, r, p, n)


class _StepwiseRecurrence(torch.autograd.Function):
    """`linear_recurrence` one chunk state at a time, in place, with the reverse recurrence as backward.

    Each step is one fused multiply-add over a chunk's state, so the cost is T passes over
    that state (memory traffic linear in T) and nothing (T x T) is built. Runs in at least
    fp32 whatever the input dtype (a bf16 state summed over many chunks would lose bits).
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        compute = torch.promote_types(u.dtype, torch.float32)
        keep = torch.exp(a.to(compute)).permute(0, 3, 1, 2)[..., None, None].contiguous()  # (b, T, g, r, 1, 1)
        out = u.to(compute, copy=True)
        for t in range(1, out.shape[1]):
            out[:, t].addcmul_(out[:, t - 1], keep[:, t])
        ctx.save_for_backward(out, keep)
        ctx.dtypes = (u.dtype, a.dtype)
        return out.to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out, keep = ctx.saved_tensors
        u_dtype, a_dtype = ctx.dtypes
        grad_u = grad.to(out.dtype, copy=True)  # d loss / d out[t], gathered from every later step
        for t in range(grad_u.shape[1] - 2, -1, -1):
            grad_u[:, t].addcmul_(grad_u[:, t + 1], keep[:, t + 1])
        grad_a = None
        if ctx.needs_input_grad[1]:  # out[t] depends on a[t] through exp(a[t]) * out[t-1]
            grad_a = torch.zeros(keep.shape[:4], dtype=out.dtype, device=out.device)
            grad_a[:, 1:] = (grad_u[:, 1:] * out[:, :-1]).sum(dim=(-1, -2)) * keep[:, 1:, :, :, 0, 0]
            grad_a = grad_a.permute(0, 2, 3, 1).to(a_dtype)
        return grad_u.to(u_dtype), grad_a


def _two_level_recurrence(u: torch.Tensor, a: torch.Tensor, block: int) -> torch.Tensor:
    """`linear_recurrence` at a cost linear in T: dense (block x block) passes inside blocks of
    `block` items (the blocks batched), a dense pass over the blocks' end states, and each block's
    carried-in state added decayed.

    Per state value it costs T * block + (T / block)^2 multiply-adds against T^2 for
    `_dense_recurrence`, with no Python loop over T, so it traces for a static or symbolic T (not
    for a data-dependent one: see `linear_recurrence`). Only 3-D transposes and reshapes, for the
    reasons `_dense_recurrence` gives.
    """
    b, T, g, r, p, n = u.shape
    # Blocks by ceiling division, padded to their multiple as `ssd_chunked` pads: a symbolic T then
    # gives sizes Inductor can divide. Zero input and zero log-decay after the end leave the state unchanged.
    m = -(-T // block)
    pad = m * block - T
    u = F.pad(u, (0, 0, 0, 0, 0, 0, 0, 0, 0, pad))
    # Log-decays position-major, (b, T', heads): every view below is then a reshape or a 3-D transpose.
    a_by_step = F.pad(a, (0, pad)).reshape(b, g * r, m * block).transpose(1, 2).contiguous()
    a_blocks = a_by_step.reshape(b * m, block, g * r)
    local = _dense_recurrence(u.reshape(b * m, block, g, r, p, n),
                              a_blocks.transpose(1, 2).reshape(b * m, g, r, block))
    local = local.reshape(b, m, block, g, r, p, n)
    # The state at the end of block j: its own end state plus the previous one decayed across it.
    totals = a_blocks.sum(dim=1).reshape(b, m, g * r).transpose(1, 2).reshape(b, g, r, m)
    ends = _dense_recurrence(local[:, :, -1], totals)  # (b, m, g, r, p, n)
    carried_in = F.pad(ends[:, :-1], (0, 0, 0, 0, 0, 0, 0, 0, 1, 0))  # block 0 starts from zero
    into_block = torch.exp(a_blocks.cumsum(dim=1)).reshape(b, m, block, g, r, 1, 1)
    out = local + into_block * carried_in[:, :, None]
    return out.reshape(b, m * block, g, r, p, n)[:, :T]


# Chunk states passed as decay matmuls: densely up to this many, beyond in two levels of blocks of
# STATE_BLOCK. Eager EMA states (one head, state 1, forward+backward): the two-level form ran 2.0-2.7x as
# fast as dense blocks of up to 64 chained by a Python loop at 1,000-4,000 states, 1.12x at 65, and
# 0.40-0.76x as fast as one dense pass at 33-64 (bench/RESULTS.md).
DENSE_MAX_STATES = 64
STATE_BLOCK = 16


def _matmul_recurrence(u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """`linear_recurrence` as decay matmuls: one dense pass over a few states, two levels over more."""
    if u.shape[1] <= DENSE_MAX_STATES:
        return _dense_recurrence(u, a)
    return _two_level_recurrence(u, a, STATE_BLOCK)


def linear_recurrence(u: torch.Tensor, a: torch.Tensor, length_is_data_dependent: bool = False) -> torch.Tensor:
    """out[t] = exp(a[t]) * out[t-1] + u[t], out[-1] = 0, over the chunk axis.

    u: (b, T, g, r, p, n); a: (b, g, r, T). As decay matmuls (`_matmul_recurrence`), the pass
    has no loop over T: more than DENSE_MAX_STATES states take the two-level form, whose cost
    grows linearly with T; fewer, one dense (T x T) matmul. Traced (torch.compile), a count that
    `length_is_data_dependent` (an inner stage's: a chunk count) always takes the dense one,
    quadratic in T. Eager, a chunk state of at least STEPWISE_MIN_STATE values (Mamba-2's) runs
    step by step (`_StepwiseRecurrence`), whose cost per step is one pass over that state; a
    smaller one (the dechunk EMA's) runs as matmuls, since there a Python step costs more than
    the arithmetic it does (bench/RESULTS.md).
    """
    if torch.compiler.is_compiling():
        # A symbolic count is compared with a guard (at most one recompile when a length crosses
        # the limit). A count that may be data-dependent stays dense: for an unbacked size Inductor
        # lowered the two-level form's matmuls wrongly or not at all (torch 2.13).
        return _dense_recurrence(u, a) if length_is_data_dependent else _matmul_recurrence(u, a)
    if u[:, 0].numel() >= STEPWISE_MIN_STATE:
        return _StepwiseRecurrence.apply(u, a)
    return _matmul_recurrence(u, a)


# Values in one chunk state (all batch rows and heads) from which the step-by-step pass is used.
STEPWISE_MIN_STATE = 4096


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
