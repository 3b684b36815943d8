"""dnahnet.nn.cpu_kernel: the fused CPU kernel of the SSD chunk outputs equals the PyTorch form.

The kernel is C++ built on first use (about 40 s on 2 cores, then cached by torch), so these tests
are marked slow and skip, naming the reason, where no compiler or ninja is found.
"""

from __future__ import annotations

import os

import pytest
import torch

from dnahnet.errors import DnahnetInputError
from dnahnet.nn import cpu_kernel
from dnahnet.nn.mamba2 import Mamba2
from dnahnet.nn.ssd import _ChunkOutput, ssd_chunked, ssd_sequential

pytestmark = pytest.mark.slow


@pytest.fixture
def calls(monkeypatch):
    """One entry per call of the kernel's whole-scan operator from `ssd_chunked`."""
    made = []
    real = cpu_kernel.scan
    monkeypatch.setattr(cpu_kernel, "scan", lambda *a, **k: made.append(1) or real(*a, **k))
    return made


def _chunk_inputs(b, c, g, r, q, p, n, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    C = torch.randn(b, c, g, 1, q, n, generator=gen, dtype=dtype) / n ** 0.5
    B = torch.randn(b, c, g, 1, q, n, generator=gen, dtype=dtype)
    A_cum = (-torch.rand(b, c, g, r, q, generator=gen, dtype=dtype) * 0.3).cumsum(-1)
    x = torch.randn(b, c, g, r, q, p, generator=gen, dtype=dtype)
    carried = torch.randn(b, c, g, r, n, p, generator=gen, dtype=dtype)
    return [t.requires_grad_() for t in (C, B, A_cum, x, carried)]


@pytest.mark.parametrize("shape", [
    (2, 3, 1, 4, 64, 32, 32),  # shared B/C, the cpu presets' sizes
    (1, 2, 2, 2, 64, 64, 64),  # two groups
    (1, 2, 3, 1, 32, 16, 16),  # per-head B/C, the smallest sizes
    (1, 1, 1, 2, 128, 64, 32),  # a longer chunk, state smaller than the head
    (1, 1, 1, 1, 256, 16, 128),
])
def test_the_kernel_equals_the_float64_chunk_output_forward_and_backward(cpu_kernel_built, shape):
    """The reference takes x scaled by dt; the kernel takes x and dt apart and returns dt's gradient too."""
    reference = _chunk_inputs(*shape)
    b, c, g, r, q, p = reference[3].shape
    dt = (torch.rand(b, c, g, r, q, generator=torch.Generator().manual_seed(2), dtype=torch.float64) + 0.1).requires_grad_()
    C64, B64, A64, x64, carried64 = reference
    y_ref = _ChunkOutput.apply(C64, B64, A64, x64 * dt[..., None], carried64)
    dy = torch.randn(y_ref.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads_ref = torch.autograd.grad(y_ref, (*reference, dt), dy)
    C, B, A_cum, x, carried, dt32 = [t.detach().float().requires_grad_() for t in (*reference, dt)]
    n = C.shape[-1]
    # The kernel takes x, B and C position-major, (b, l, heads or groups, size), as the scan holds them.
    def by_position(t):
        return t.permute(0, 1, 4, 2, 3, 5).reshape(b, c * q, -1, t.shape[-1])
    dt_by_position = dt32.permute(0, 1, 4, 2, 3).reshape(b, c * q, g * r)
    y = cpu_kernel.chunk_output(by_position(C), by_position(B), A_cum, by_position(x), carried, dt_by_position)
    grads = torch.autograd.grad(y, (C, B, A_cum, x, carried, dt32), by_position(dy.float()))
    y = y.reshape(b, c, q, g, r, p).permute(0, 1, 3, 4, 2, 5)
    assert y.dtype == torch.float32 and y.shape == y_ref.shape
    for got, want in zip((y, *grads), (y_ref, *grads_ref)):
        assert float((got.detach().double() - want.detach()).abs().max() / want.detach().abs().max()) < 2e-6


@pytest.mark.parametrize("b,c,g,r,q,p,n", [(2, 3, 1, 4, 64, 32, 32), (1, 2, 2, 2, 32, 16, 64), (1, 1, 1, 1, 256, 128, 16)])
def test_the_chunk_states_equal_their_float64_sum_forward_and_backward(cpu_kernel_built, b, c, g, r, q, p, n):
    gen = torch.Generator().manual_seed(0)
    B = torch.randn(b, c * q, g, n, generator=gen, dtype=torch.float64, requires_grad=True)
    A_cum = (-torch.rand(b, c, g, r, q, generator=gen, dtype=torch.float64) * 0.3).cumsum(-1).requires_grad_()
    x = torch.randn(b, c * q, g * r, p, generator=gen, dtype=torch.float64, requires_grad=True)
    dt = (torch.rand(b, c * q, g * r, generator=gen, dtype=torch.float64) + 0.1).requires_grad_()

    def reference(B, A_cum, x, dt):  # sum_s exp(A_end - A_s) dt_s B_s x_s^T per chunk and head, (n x p)
        decay = torch.exp(A_cum[..., -1:] - A_cum)  # (b, c, g, r, q)
        scaled = (x * dt[..., None]).reshape(b, c, q, g, r, p)
        return torch.einsum("bcgrs,bcsgn,bcsgrp->bcgrnp", decay, B.reshape(b, c, q, g, n), scaled)

    want = reference(B, A_cum, x, dt)
    up = torch.randn(want.shape, generator=gen, dtype=torch.float64)
    grads_want = torch.autograd.grad(want, (B, A_cum, x, dt), up)
    inputs = [t.detach().float().requires_grad_() for t in (B, A_cum, x, dt)]
    got = cpu_kernel.chunk_states(*inputs)
    grads = torch.autograd.grad(got, inputs, up.float())
    for a, w in zip((got, *grads), (want, *grads_want)):
        assert float((a.detach().double() - w.detach()).abs().max() / w.detach().abs().max()) < 1e-5  # fp32 sums of up to 256 terms


def _conv_output_slices(b, l, h, p, g, n, seed=0):
    """x (b, l, h, p) and B, C (b, l, g, n) as Mamba-2 hands them to the scan: slices of one conv output whose
    rows hold x, B and C side by side; with dt (b, l, h) and A_cum for chunks of 64."""
    gen = torch.Generator().manual_seed(seed)
    xbc = torch.randn(b, l, h * p + 2 * g * n, generator=gen).requires_grad_()
    x, B, C = torch.split(xbc, [h * p, g * n, g * n], dim=-1)
    dt = (torch.rand(b, l, h, generator=gen) + 0.1).requires_grad_()
    A_cum = (-torch.rand(b, l // 64, g, h // g, 64, generator=gen) * 0.3).cumsum(-1).requires_grad_()
    return xbc, x.reshape(b, l, h, p), B.reshape(b, l, g, n), C.reshape(b, l, g, n), dt, A_cum


@pytest.mark.parametrize("groups", [1, 2])
def test_the_kernels_read_slices_of_the_conv_output_as_they_would_copies(cpu_kernel_built, groups):
    """Read where they lie (no copies), x, B and C give the results and gradients of contiguous copies, bit for bit,
    in the whole-scan operator and in the separate ones."""
    b, l, h, p, n = 2, 128, 4, 32, 16
    xbc, x, B, C, dt, A_cum = _conv_output_slices(b, l, h, p, groups, n)
    assert not x.is_contiguous() and not B.is_contiguous()
    initial = torch.randn(b, groups, h // groups, n, p)
    gen = torch.Generator().manual_seed(1)
    dy, dpassed = torch.randn(b, l, h, p, generator=gen), torch.randn(b, l // 64 + 1, groups, h // groups, n, p, generator=gen)
    runs = []
    for copy in (False, True):
        inputs = [t.contiguous() if copy else t for t in (C, B, A_cum, x)]
        y, passed = cpu_kernel.scan(*inputs, dt, initial)
        states = cpu_kernel.chunk_states(inputs[1], A_cum, inputs[3], dt)
        y_parts = cpu_kernel.chunk_output(*inputs, passed[:, :-1].detach(), dt)
        outputs = (y, passed, states, y_parts)
        grads = torch.autograd.grad((y, passed, states.sum() + y_parts.sum()), (xbc, dt, A_cum),
                                    (dy, dpassed, torch.ones(())))
        runs.append((*outputs, *grads))
    for got, want in zip(*runs):
        assert torch.equal(got, want)
    # Only y used (the final state's gradient None, as in training): as if the passed states' gradient were zero.
    y, passed = cpu_kernel.scan(C, B, A_cum, x, dt, initial)
    alone = torch.autograd.grad(y, (xbc, dt, A_cum), dy)
    y, passed = cpu_kernel.scan(C, B, A_cum, x, dt, initial)
    zero = torch.autograd.grad((y, passed), (xbc, dt, A_cum), (dy, torch.zeros_like(passed)))
    for a, z in zip(alone, zero):
        assert torch.equal(a, z)


def test_the_whole_scan_operator_equals_the_float64_chunk_states_pass_and_outputs(cpu_kernel_built):
    """`scan` = each chunk's state, the states passed from chunk to chunk (`ssd._pass_chunk_states`) and each chunk's
    outputs (`ssd._ChunkOutput`), here in float64, forward and backward, with gradients into every passed state (not
    only the final one) and the initial state."""
    from dnahnet.nn.ssd import _pass_chunk_states

    b, l, h, p, g, n = 2, 256, 4, 32, 1, 32
    _, x, B, C, dt, A_cum = _conv_output_slices(b, l, h, p, g, n, seed=3)
    leaves = [t.detach().double().requires_grad_() for t in (C, B, A_cum, x, dt)]
    initial = torch.randn(b, h, p, n, dtype=torch.float64, requires_grad=True)
    Cd, Bd, Ad, xd, dtd = leaves
    states = torch.einsum("bcgrs,bcsgn,bcsgrp->bcgrnp", torch.exp(Ad[..., -1:] - Ad), Bd.reshape(b, l // 64, 64, g, n),
                          (xd * dtd[..., None]).reshape(b, l // 64, 64, g, h // g, p))
    passed_ref = _pass_chunk_states(states, Ad, initial, False, torch.float64)
    y_ref = _ChunkOutput.apply(*(t.reshape(b, l // 64, 64, g, -1, t.shape[-1]).permute(0, 1, 3, 4, 2, 5)
                                 for t in (Cd, Bd)), Ad,
                               (xd * dtd[..., None]).reshape(b, l // 64, 64, g, h // g, p).permute(0, 1, 3, 4, 2, 5),
                               passed_ref[:, :-1])
    y_ref = y_ref.permute(0, 1, 4, 2, 3, 5).reshape(b, l, h, p)
    gen = torch.Generator().manual_seed(4)
    dy, dpassed = torch.randn(y_ref.shape, generator=gen, dtype=torch.float64), torch.randn(passed_ref.shape, generator=gen, dtype=torch.float64)
    want = torch.autograd.grad((y_ref, passed_ref), (*leaves, initial), (dy, dpassed))
    inputs = [t.detach().float().requires_grad_() for t in (*leaves, initial)]
    start = inputs[5].reshape(b, g, h // g, p, n).mT
    y, passed = cpu_kernel.scan(*inputs[:5], start)
    got = torch.autograd.grad((y, passed), inputs, (dy.float(), dpassed.float()))
    for a, w in zip((y, passed, *got), (y_ref, passed_ref, *want)):
        assert float((a.detach().double() - w.detach()).abs().max() / w.detach().abs().max()) < 1e-5


@pytest.mark.parametrize("groups", [1, 8])
def test_the_scan_on_the_kernel_equals_the_step_by_step_recurrence(cpu_kernel_built, groups):
    """Any length (here not a multiple of the chunk), an initial state, shared or per-head B/C; x scaled by
    dt inside the scan (on the kernel) or before it (the pure path)."""
    gen = torch.Generator().manual_seed(0)
    b, length, h, p, n = 2, 300, 8, 32, 32
    x = torch.randn(b, length, h, p, generator=gen, dtype=torch.float64)
    log_decay = -torch.rand(b, length, h, generator=gen, dtype=torch.float64) * 0.5
    B = torch.randn(b, length, groups, n, generator=gen, dtype=torch.float64)
    C = torch.randn(b, length, groups, n, generator=gen, dtype=torch.float64)
    init = torch.randn(b, h, p, n, generator=gen, dtype=torch.float64)
    dt = torch.rand(b, length, h, generator=gen, dtype=torch.float64) + 0.1
    y_ref, final_ref = ssd_sequential(x * dt[..., None], log_decay, B, C, init)
    fused = [t.float().requires_grad_() for t in (x, log_decay, B, C, init, dt)]
    pure = [t.float().requires_grad_() for t in (x, log_decay, B, C, init, dt)]
    y, final = ssd_chunked(*fused[:4], 64, fused[4], cpu_kernel=True, dt=fused[5])
    assert float((y.detach().double() - y_ref).abs().max() / y_ref.abs().max()) < 2e-6
    assert float((final.detach().double() - final_ref).abs().max() / final_ref.abs().max()) < 2e-6
    y_pure, final_pure = ssd_chunked(*pure[:4], 64, pure[4], cpu_kernel=False, dt=pure[5])
    upstream = (torch.randn(y.shape, generator=gen), torch.randn(final.shape, generator=gen))
    torch.autograd.backward((y, final), upstream)
    torch.autograd.backward((y_pure, final_pure), upstream)
    for a, b_ in zip(fused, pure):
        assert float((a.grad - b_.grad).abs().max() / b_.grad.abs().max()) < 1e-5


def test_the_kernel_is_used_when_asked_and_only_where_it_applies(cpu_kernel_built, monkeypatch, calls):
    gen = torch.Generator().manual_seed(0)
    x, log_decay = torch.randn(1, 128, 4, 16, generator=gen), -torch.rand(1, 128, 4, generator=gen)
    B, C = torch.randn(1, 128, 1, 16, generator=gen), torch.randn(1, 128, 1, 16, generator=gen)
    ssd_chunked(x, log_decay, B, C, 64, cpu_kernel=False)
    assert calls == []
    monkeypatch.setenv(cpu_kernel.ENV, "0")
    ssd_chunked(x, log_decay, B, C, 64)
    assert calls == []
    monkeypatch.delenv(cpu_kernel.ENV)  # on by default
    ssd_chunked(x, log_decay, B, C, 64)
    assert calls == [1]
    assert cpu_kernel.describe().startswith("the fused CPU kernel (DNAHNET_CPU_KERNEL=unset, on by default)")
    monkeypatch.setenv(cpu_kernel.ENV, "1")
    assert cpu_kernel.describe().startswith("the fused CPU kernel (DNAHNET_CPU_KERNEL=1)")
    ssd_chunked(x, log_decay, B, C, 64, cpu_kernel=False)  # the argument overrides the environment
    ssd_chunked(x.double(), log_decay.double(), B.double(), C.double(), 64)  # float32 only
    ssd_chunked(torch.randn(1, 128, 4, 24), log_decay, B, C, 64)  # a head size it was not built for
    assert calls == [1]


def test_under_bf16_autocast_the_kernel_computes_in_fp32(cpu_kernel_built, calls):
    """Mamba-2 hands the scan fp32 inputs under autocast: the kernel computes as without autocast (identical results and gradients), where the PyTorch scan's matmuls run in bf16."""
    gen = torch.Generator().manual_seed(0)
    inputs = (torch.randn(2, 200, 4, 16, generator=gen), -torch.rand(2, 200, 4, generator=gen) * 0.5,
              torch.randn(2, 200, 1, 16, generator=gen), torch.randn(2, 200, 1, 16, generator=gen),
              torch.randn(2, 4, 16, 16, generator=gen))
    plain = [t.clone().requires_grad_() for t in inputs]
    autocast = [t.clone().requires_grad_() for t in inputs]
    upstream = torch.randn(2, 200, 4, 16, generator=gen)
    y, final = ssd_chunked(*plain[:4], 64, plain[4], cpu_kernel=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_ac, final_ac = ssd_chunked(*autocast[:4], 64, autocast[4], cpu_kernel=True)
        y_pure = ssd_chunked(*inputs[:4], 64, inputs[4], cpu_kernel=False)[0]
    assert calls == [1, 1]
    assert y_ac.dtype == final_ac.dtype == torch.float32
    assert torch.equal(y_ac, y) and torch.equal(final_ac, final)
    torch.autograd.backward((y, final), (upstream, torch.ones_like(final)))
    torch.autograd.backward((y_ac, final_ac), (upstream, torch.ones_like(final)))
    for a, b_ in zip(plain, autocast):
        assert torch.equal(a.grad, b_.grad)
    # The PyTorch scan under autocast: bf16 products, so visibly further from fp32 than the kernel's result.
    assert float((y_pure.detach().float() - y.detach()).abs().max() / y.detach().abs().max()) > 1e-3


@pytest.fixture
def layer_kernel_calls(monkeypatch):
    """The name of each call of the kernel's conv and gated norm from a Mamba-2 layer."""
    made = []
    for name in ("gated_norm", "conv_silu"):
        real = getattr(cpu_kernel, name)
        monkeypatch.setattr(cpu_kernel, name, lambda *a, real=real, name=name: made.append(name) or real(*a))
    return made


@pytest.mark.parametrize("rows,heads,head,group", [
    (300, 8, 32, 256),  # the cpu presets' layers: one group of all 256 channels
    (37, 2, 64, 64),  # two groups, a row count that splits unevenly between threads
    (129, 4, 16, 32),  # groups smaller than a head's pair
])
def test_the_gated_norm_kernel_equals_the_float64_skip_and_norm_forward_and_backward(cpu_kernel_built, rows, heads, head, group):
    """out = rmsnorm((y + D x) * silu(z)) * w per group, with x and z slices of wider tensors as in Mamba-2."""
    from dnahnet.nn.norm import RMSNormGated

    d = heads * head
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(rows, d, generator=gen, dtype=torch.float64)
    x_wide = torch.randn(rows, d + 32, generator=gen, dtype=torch.float64)  # x sits at the front of xBC
    z_wide = torch.randn(rows, d + 48, generator=gen, dtype=torch.float64)  # z at an offset into a projection
    D = torch.randn(heads, generator=gen, dtype=torch.float64)
    weight = torch.randn(d, generator=gen, dtype=torch.float64)
    norm = RMSNormGated(d, group_size=group).double().requires_grad_(False)  # its weight stays ones
    leaves64 = [t.clone().requires_grad_() for t in (y, x_wide, D, z_wide, weight)]
    leaves32 = [t.float().requires_grad_() for t in (y, x_wide, D, z_wide, weight)]

    def reference(y, x_wide, D, z_wide, weight):
        skip = x_wide[:, :d] * D.repeat_interleave(head)
        return norm(y + skip, z_wide[:, 16:16 + d]) * weight  # the weight as an input, for its gradient

    want = reference(*leaves64)
    got = cpu_kernel.gated_norm(leaves32[0], leaves32[1][:, :d], leaves32[2], leaves32[3][:, 16:16 + d],
                                leaves32[4], group, norm.eps)
    assert got.dtype == torch.float32 and got.shape == (rows, d)
    up = torch.randn(rows, d, generator=gen, dtype=torch.float64)
    grads_want = torch.autograd.grad(want, leaves64, up)
    grads = torch.autograd.grad(got, leaves32, up.float())
    for a, w in zip((got, *grads), (want, *grads_want)):
        assert float((a.detach().double() - w.detach()).abs().max() / w.detach().abs().max()) < 1e-5
    # The columns of the wide tensors that are neither x nor z get no gradient.
    assert grads[1][:, d:].abs().max() == 0 and grads[3][:, :16].abs().max() == 0


@pytest.mark.parametrize("rows,d", [(300, 128), (7, 16), (65, 256)])
def test_the_rms_norm_kernel_equals_the_float64_norm_forward_and_backward(cpu_kernel_built, rows, d):
    """x a slice of a wider tensor (the residual stream is read where it lies); the weight's gradient too."""
    from dnahnet.nn.norm import RMSNorm

    gen = torch.Generator().manual_seed(0)
    x_wide = torch.randn(rows, d + 16, generator=gen, dtype=torch.float64) * 3
    weight = torch.randn(d, generator=gen, dtype=torch.float64)
    norm = RMSNorm(d).double()
    norm.cpu_kernel = False
    with torch.no_grad():
        norm.weight.copy_(weight)
    leaf64 = x_wide.clone().requires_grad_()
    want = norm(leaf64[:, 8:8 + d])
    leaf32, w32 = x_wide.float().requires_grad_(), weight.float().requires_grad_()
    got = cpu_kernel.rms_norm(leaf32[:, 8:8 + d], w32, norm.eps)
    assert got.dtype == torch.float32
    up = torch.randn(rows, d, generator=gen, dtype=torch.float64)
    grads_want = torch.autograd.grad(want, (leaf64, norm.weight), up)
    grads = torch.autograd.grad(got, (leaf32, w32), up.float())
    for a, w in zip((got, *grads), (want, *grads_want)):
        assert float((a.detach().double() - w.detach()).abs().max() / w.detach().abs().max()) < 1e-5
    # bf16 out: the float32 result cast; a bf16 output gradient: the float32 backward of its values.
    assert torch.equal(cpu_kernel.rms_norm(leaf32[:, 8:8 + d], w32, norm.eps, bf16_out=True), got.bfloat16())
    low = cpu_kernel.rms_norm(leaf32[:, 8:8 + d], w32, norm.eps, bf16_out=True)
    up16 = up.bfloat16()
    via_bf16 = torch.autograd.grad(low, (leaf32, w32), up16)
    via_fp32 = torch.autograd.grad(cpu_kernel.rms_norm(leaf32[:, 8:8 + d], w32, norm.eps), (leaf32, w32), up16.float())
    for a, b_ in zip(via_bf16, via_fp32):
        assert torch.equal(a, b_)


def test_under_bf16_autocast_only_a_block_norm_before_a_projection_writes_bf16(cpu_kernel_built):
    """A block's pre-norms feed its mixer's and MLP's projections, which read bf16 under autocast; a stack's last norm
    (read by the routing, in float32) keeps float32. Eagerly with the kernel asked for, and never without it."""
    from dnahnet.nn.norm import RMSNorm

    x = torch.randn(2, 10, 32)
    before, last = RMSNorm(32, feeds_projection=True), RMSNorm(32)
    for norm in (before, last):
        norm.cpu_kernel = True
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (before(x).dtype, last(x).dtype) == (torch.bfloat16, torch.float32)
        before.cpu_kernel = False
        assert before(x).dtype == torch.float32
    assert torch.allclose(last(x), RMSNorm(32)(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("b,length,channels,k", [
    (3, 200, 320, 4),  # the cpu presets' layers (xBC of 256 + 2 x 32 channels), three sequences
    (2, 3, 32, 4),  # sequences shorter than the conv
    (1, 130, 48, 2),
])
def test_the_conv_kernel_equals_the_float64_causal_conv_and_silu_forward_and_backward(cpu_kernel_built, b, length, channels, k):
    """Each sequence starts from zeros; the input is a slice of a wider projection, as xBC is of in_proj's output."""
    from dnahnet.nn.mamba2 import causal_depthwise_conv

    gen = torch.Generator().manual_seed(0)
    wide = torch.randn(b, length, channels + 24, generator=gen, dtype=torch.float64)
    weight = torch.randn(channels, 1, k, generator=gen, dtype=torch.float64) / k
    bias = torch.randn(channels, generator=gen, dtype=torch.float64)
    leaves64 = [t.clone().requires_grad_() for t in (wide, weight, bias)]
    leaves32 = [t.float().requires_grad_() for t in (wide, weight, bias)]
    want = torch.nn.functional.silu(causal_depthwise_conv(leaves64[0][..., 8:8 + channels], *leaves64[1:]))
    got = cpu_kernel.conv_silu(leaves32[0][..., 8:8 + channels], *leaves32[1:])
    assert got.dtype == torch.float32 and got.shape == (b, length, channels)
    up = torch.randn(want.shape, generator=gen, dtype=torch.float64)
    grads_want = torch.autograd.grad(want, leaves64, up)
    grads = torch.autograd.grad(got, leaves32, up.float())
    for a, w in zip((got, *grads), (want, *grads_want)):
        assert float((a.detach().double() - w.detach()).abs().max() / w.detach().abs().max()) < 1e-5
    assert grads[0][..., :8].abs().max() == 0 and grads[0][..., 8 + channels:].abs().max() == 0


def test_a_mamba2_layer_runs_its_conv_and_norm_on_the_kernel_where_asked_and_equals_pytorch(
        cpu_kernel_built, monkeypatch, layer_kernel_calls):
    torch.manual_seed(0)
    layer = Mamba2(32, d_state=16, headdim=16, chunk_size=32)
    u = torch.randn(2, 70, 32, requires_grad=True)
    monkeypatch.setenv(cpu_kernel.ENV, "0")
    pure = layer(u)
    pure_grads = torch.autograd.grad(pure.square().sum(), (u, *layer.parameters()))
    assert layer_kernel_calls == []
    layer.cpu_kernel = True  # bench/train_pairs.py's cpu-kernel configs: the layer asks, not the environment
    fused = layer(u)
    fused_grads = torch.autograd.grad(fused.square().sum(), (u, *layer.parameters()))
    assert layer_kernel_calls == ["conv_silu", "gated_norm"]
    torch.testing.assert_close(fused, pure, rtol=1e-5, atol=1e-5)
    for got, want in zip(fused_grads, pure_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # A prefill that carries on from a cache: the conv reads the cached inputs (PyTorch), the norm is the kernel's.
    first, second = layer.allocate_inference_cache(2), layer.allocate_inference_cache(2)
    with torch.no_grad():
        layer(u[:, :40], cache=first)
        carried = layer(u[:, 40:], cache=first)
        layer.cpu_kernel = False
        layer(u[:, :40], cache=second)
        carried_pure = layer(u[:, 40:], cache=second)
    assert layer_kernel_calls == ["conv_silu", "gated_norm", "gated_norm", "gated_norm"]
    torch.testing.assert_close(carried, carried_pure, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(carried, pure[:, 40:].detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first.ssm_state, second.ssm_state, rtol=1e-5, atol=1e-5)
    del layer_kernel_calls[:]
    layer.cpu_kernel = None
    monkeypatch.setenv(cpu_kernel.ENV, "1")
    layer(u)
    layer.double()(u.double())  # float32 only (and bf16 for the conv, under autocast)
    assert layer_kernel_calls == ["conv_silu", "gated_norm"]
    layer.float().cpu_kernel = False  # the layer's choice overrides the environment
    layer(u)
    assert layer_kernel_calls == ["conv_silu", "gated_norm"]


def _assert_near(got: torch.Tensor, want: torch.Tensor, bf16: bool, rtol: float = 1e-5) -> None:
    """fp32: elementwise. bf16 autocast: compiled and eager round different intermediates to bf16, so a few
    elements of a gradient differ by a bf16 step; the whole stays within 1% (norm) and 3% of its largest entry."""
    if not bf16:
        torch.testing.assert_close(got, want, rtol=rtol, atol=1e-5)
        return
    got, want = got.detach().float(), want.detach().float()
    assert float((got - want).norm() / want.norm()) < 1e-2
    assert float((got - want).abs().max() / want.abs().max()) < 3e-2


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.skipif(
    not os.environ.get("DNAHNET_TEST_INDUCTOR"), reason="Inductor code generation takes minutes; set DNAHNET_TEST_INDUCTOR=1"))])
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16-autocast"])
def test_a_mamba2_layer_on_the_kernel_traces_whole_and_matches_eager(cpu_kernel_built, monkeypatch, calls, backend, bf16):
    monkeypatch.setenv(cpu_kernel.ENV, "1")
    torch.manual_seed(0)
    layer = Mamba2(32, d_state=16, headdim=16, chunk_size=32)
    u = torch.randn(2, 100, 32, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        eager = layer(u)
        (grad_eager,) = torch.autograd.grad(eager.float().square().sum(), u)
        torch._dynamo.reset()
        compiled = torch.compile(layer, backend=backend, fullgraph=True)
        out = compiled(u)
        (grad,) = torch.autograd.grad(out.float().square().sum(), u)
    assert calls  # eager; traced, the operator is called from the graph
    _assert_near(out, eager, bf16)
    _assert_near(grad, grad_eager, bf16, rtol=1e-4)
    pure = Mamba2(32, d_state=16, headdim=16, chunk_size=32)
    pure.load_state_dict(layer.state_dict())
    monkeypatch.setenv(cpu_kernel.ENV, "0")
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        _assert_near(pure(u), eager, bf16)


def test_a_machine_that_cannot_build_it_runs_the_pure_scan_and_says_why_once(monkeypatch, capsys):
    monkeypatch.setattr(cpu_kernel, "_STATE", {})
    monkeypatch.setattr(cpu_kernel.shutil, "which", lambda name: None)
    cpu_kernel._warn_once.cache_clear()
    assert cpu_kernel.load() == "no C++ compiler on PATH"
    monkeypatch.delenv(cpu_kernel.ENV, raising=False)  # what a run records (train.json "cpu_scan")
    assert cpu_kernel.describe() == "PyTorch (the fused CPU kernel could not be built: no C++ compiler on PATH)"
    gen = torch.Generator().manual_seed(0)
    x, log_decay = torch.randn(1, 64, 2, 16, generator=gen), -torch.rand(1, 64, 2, generator=gen)
    B, C = torch.randn(1, 64, 1, 16, generator=gen), torch.randn(1, 64, 1, 16, generator=gen)
    y, _ = ssd_chunked(x, log_decay, B, C, 32, cpu_kernel=True)
    ssd_chunked(x, log_decay, B, C, 32, cpu_kernel=True)
    torch.testing.assert_close(y, ssd_chunked(x, log_decay, B, C, 32, cpu_kernel=False)[0])
    said = capsys.readouterr().err
    assert said.count("the fused CPU kernels are unavailable (no C++ compiler on PATH)") == 1
    assert "DNAHNET_CPU_KERNEL=0 runs without them" in said
    monkeypatch.setenv(cpu_kernel.ENV, "require")
    with pytest.raises(DnahnetInputError, match="could not be built"):
        ssd_chunked(x, log_decay, B, C, 32)


@pytest.mark.parametrize("value,wanted", [("1", True), ("require", True), ("Require ", True), ("0", False), ("", True)])
def test_the_environment_switch(monkeypatch, value, wanted):
    """On unless DNAHNET_CPU_KERNEL=0 (an empty value counts as unset)."""
    monkeypatch.setenv(cpu_kernel.ENV, value)
    assert cpu_kernel.requested() is wanted
    monkeypatch.delenv(cpu_kernel.ENV)
    assert cpu_kernel.requested()
    monkeypatch.setenv(cpu_kernel.ENV, "0")
    assert cpu_kernel.describe() == "PyTorch (DNAHNET_CPU_KERNEL=0)"


def test_each_instruction_set_gets_its_own_build(monkeypatch):
    """-march=native code from one CPU may not run on another sharing torch's build cache (an NFS home)."""
    monkeypatch.setattr(cpu_kernel, "cpu_features", lambda: "fpu sse2 avx2")
    older = cpu_kernel.build_name()
    monkeypatch.setattr(cpu_kernel, "cpu_features", lambda: "fpu sse2 avx2 avx512f avx512_bf16")
    newer = cpu_kernel.build_name()
    assert older != newer and older.startswith("dnahnet_cpu_kernels_") and newer.startswith("dnahnet_cpu_kernels_")
    assert cpu_kernel.build_name() == newer  # the same CPU, the same build


def test_a_first_build_says_what_it_is_doing_once(monkeypatch, capsys, tmp_path):
    """Building takes about 40 s, so the first one says so; a cached build is loaded silently."""
    monkeypatch.setattr(cpu_kernel, "_STATE", {})
    monkeypatch.setattr(cpu_kernel, "_register", lambda: None)
    monkeypatch.setattr(cpu_kernel, "_built_before", lambda name: False)
    import torch.utils.cpp_extension as extension

    built = []
    monkeypatch.setattr(extension, "load", lambda **options: built.append(options["name"]))
    monkeypatch.setattr(extension, "verify_ninja_availability", lambda: None)
    monkeypatch.setattr(cpu_kernel.shutil, "which", lambda *a, **k: "/usr/bin/tool")
    assert cpu_kernel.load() is None and cpu_kernel.load() is None
    assert built == [cpu_kernel.build_name()]
    assert capsys.readouterr().err.count("building the fused CPU kernels for this CPU (once, about 40 s") == 1
    monkeypatch.setattr(cpu_kernel, "_STATE", {})
    monkeypatch.setattr(cpu_kernel, "_built_before", lambda name: True)
    assert cpu_kernel.load() is None
    assert capsys.readouterr().err == ""


def test_compiling_a_cpu_model_builds_the_kernels_first_and_a_gpu_or_pure_model_never(monkeypatch):
    """Traced, a module takes the kernels only if they are built, so `compile_layers` builds them for a CPU
    model that would take them; a model whose every switch is off, or that is not on the CPU, builds nothing."""
    from dnahnet.config import model_config_from_preset
    from dnahnet.nn.compile import build_cpu_kernels_for
    from dnahnet.nn.hnet import HNetLM

    asked = []
    monkeypatch.setattr(cpu_kernel, "available", lambda require=False: asked.append(1) or True)
    monkeypatch.delenv(cpu_kernel.ENV, raising=False)
    model = HNetLM(model_config_from_preset("tiny"))
    build_cpu_kernels_for(model)
    assert asked == [1]
    monkeypatch.setenv(cpu_kernel.ENV, "0")
    build_cpu_kernels_for(model)
    assert asked == [1]
    next(m for m in model.modules() if isinstance(m, Mamba2)).cpu_kernel = True  # one module asks for them
    build_cpu_kernels_for(model)
    assert asked == [1, 1]
    monkeypatch.delenv(cpu_kernel.ENV)
    with torch.device("meta"):
        elsewhere = HNetLM(model_config_from_preset("tiny"))
    build_cpu_kernels_for(elsewhere)
    assert asked == [1, 1]


def test_a_value_of_the_switch_it_does_not_know_is_an_error(monkeypatch):
    monkeypatch.setenv(cpu_kernel.ENV, "yes")
    with pytest.raises(DnahnetInputError, match="DNAHNET_CPU_KERNEL='yes' is not understood"):
        cpu_kernel.requested()


def test_train_pairs_pairs_a_config_on_the_kernel_with_the_same_config_without_it(cpu_kernel_built, tmp_path, calls):
    import json
    import statistics

    from bench.train_pairs import main, parse_train_configs

    out = tmp_path / "pairs"
    assert main(["--configs", "tiny-transformer,tiny,tiny:cpu-kernel", "--repeats", "3", "--seq-len", "64",
                 "--batch-size", "2", "--out", str(out)]) == 0
    assert calls  # the kernel config computed on it
    rows = json.loads((out / "results.json").read_text())["rows"]
    plain, fused = rows["tiny"], rows["tiny:cpu-kernel"]
    assert (plain["scan"], fused["scan"]) == ("chunked", "chunked, fused CPU kernel")
    assert "cpu_kernel_gain" not in plain
    assert fused["cpu_kernel_gain"]["ratio_median"] == statistics.median(
        [p / k for p, k in zip(plain["seconds"], fused["seconds"])])
    assert "- tiny:cpu-kernel: **" in (out / "report.md").read_text()
    assert parse_train_configs("tiny:cpu-kernel+bf16") == ["tiny:cpu-kernel+bf16"]  # the kernel computes in fp32
    with pytest.raises(DnahnetInputError, match="one of scan-free and cpu-kernel at most once"):
        parse_train_configs("tiny:scan-free+cpu-kernel")


def test_a_cpu_kernel_config_puts_every_part_with_a_kernel_on_the_kernels():
    """Mamba-2 layers, residual norms, attention's rotary embedding, MLP gates and the routing."""
    from bench.train_pairs import parse_train_configs, pure_pytorch, pure_with_stand_in, use_cpu_kernel
    from dnahnet.config import model_config_from_preset
    from dnahnet.nn.attention import CausalMHA
    from dnahnet.nn.chunking import RoutingModule
    from dnahnet.nn.hnet import HNetLM
    from dnahnet.nn.isotropic import SwiGLU
    from dnahnet.nn.norm import RMSNorm

    found = set()
    for preset in ("tiny-transformer", "tiny"):
        model = HNetLM(model_config_from_preset(preset))
        parts = [m for m in model.modules() if isinstance(m, (RMSNorm, Mamba2, CausalMHA, SwiGLU, RoutingModule))]
        assert use_cpu_kernel(model) == sum(isinstance(m, Mamba2) for m in parts)
        assert all(m.cpu_kernel for m in parts)
        pure_pytorch(model)  # a config without the part, though the kernels are on by default
        assert all(m.cpu_kernel is False for m in parts)
        use_cpu_kernel(model)
        pure_with_stand_in(model)  # a scan-free config: PyTorch, with the stand-in scan
        assert all(m.cpu_kernel is False for m in parts)
        assert all(m.scan is not None for m in parts if isinstance(m, Mamba2))
        found |= {type(m) for m in parts}
    assert found == {RMSNorm, Mamba2, CausalMHA, SwiGLU, RoutingModule}
    assert parse_train_configs("tiny-transformer:cpu-kernel") == ["tiny-transformer:cpu-kernel"]  # its norms


def test_train_pairs_runs_a_config_without_the_kernel_part_in_pytorch(monkeypatch):
    """Plain and scan-free configs turn every kernel off, whatever DNAHNET_CPU_KERNEL says; cpu-kernel ones on."""
    import bench.train_pairs as train_pairs

    chosen = {}
    monkeypatch.setattr(train_pairs, "prepare_train_step", lambda name, *a, adapt=None, **k: chosen.setdefault(name, adapt))
    for name in ("tiny", "tiny:scan-free", "tiny:cpu-kernel"):
        chosen.clear()
        train_pairs.prepare(name, torch.device("cpu"), 64, 2, 0)
        assert chosen["tiny"] is {"tiny": train_pairs.pure_pytorch, "tiny:scan-free": train_pairs.pure_with_stand_in,
                         "tiny:cpu-kernel": train_pairs.use_cpu_kernel}[name]


def test_a_two_stage_hnet_on_the_kernel_traces_as_one_graph_and_matches_eager(cpu_kernel_built, monkeypatch, calls):
    """The inner stage's length is a chunk count (an unbacked size when traced): the kernel's shape
    functions carry it, and the whole backbone still traces without a break."""
    import copy

    from dnahnet.config import model_config_from_preset
    from dnahnet.nn.compile import compile_layers
    from dnahnet.nn.hnet import HNetLM

    monkeypatch.setenv(cpu_kernel.ENV, "1")
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = HNetLM(model_config_from_preset("tiny-2stage"))
    compiled = copy.deepcopy(eager)
    compile_layers(compiled, backend="aot_eager", fullgraph=True, scope="model")
    ids = torch.tensor(list(b"ACGT"))[torch.randint(4, (2, 192), generator=torch.Generator().manual_seed(1))]
    outs = []
    for net in (eager, compiled):
        out = net(ids)
        loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 256), ids[:, 1:].reshape(-1))
        (loss + out.ratio_loss).backward()
        outs.append((out.logits.detach(), {k: p.grad for k, p in net.named_parameters() if p.grad is not None}))
    assert calls  # both ran on the kernel
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-4, atol=1e-4)
    for k, grad in outs[0][1].items():
        torch.testing.assert_close(outs[1][1][k], grad, rtol=1e-3, atol=1e-5, msg=k)


def test_bf16_projection_slices_give_the_values_of_casting_around_the_float32_kernels(cpu_kernel_built):
    """Under bf16 autocast the conv reads xBC and the norm reads z as bf16 slices of the projection, and the norm
    writes bf16 for the output projection: the same values, forward and backward, as casting copies to and from
    float32 around the float32 kernels (what the layer did before), with gradients in the inputs' types."""
    gen = torch.Generator().manual_seed(0)
    wide = torch.randn(2, 70, 360, generator=gen).bfloat16()  # xBC at 8..328 of a wider projection
    weight, bias = torch.randn(320, 1, 4, generator=gen) / 4, torch.randn(320, generator=gen)
    up = torch.randn(2, 70, 320, generator=gen)
    leaf16, leaf32 = wide.clone().requires_grad_(), wide.float().requires_grad_()
    got = cpu_kernel.conv_silu(leaf16[..., 8:328], weight, bias)
    want = cpu_kernel.conv_silu(leaf32[..., 8:328].contiguous(), weight, bias)
    assert got.dtype == torch.float32 and torch.equal(got, want)
    (dx16,), (dx32,) = torch.autograd.grad(got, leaf16, up), torch.autograd.grad(want, leaf32, up)
    assert dx16.dtype == torch.bfloat16 and torch.equal(dx16, dx32.bfloat16())

    rows, d, heads = 50, 256, 8
    y, x = torch.randn(rows, d, generator=gen), torch.randn(rows, d, generator=gen)
    D, w = torch.randn(heads, generator=gen), torch.randn(d, generator=gen)
    z_wide = torch.randn(rows, d + 40, generator=gen).bfloat16()
    z16, z32 = z_wide.clone().requires_grad_(), z_wide.float().requires_grad_()
    out16 = cpu_kernel.gated_norm(y, x, D, z16[:, 24:24 + d], w, d, 1e-5)
    out32 = cpu_kernel.gated_norm(y, x, D, z32[:, 24:24 + d], w, d, 1e-5)
    assert out16.dtype == torch.bfloat16 and torch.equal(out16, out32.bfloat16())
    dout = torch.randn(rows, d, generator=gen).bfloat16()
    (dz16,), (dz32,) = torch.autograd.grad(out16, z16, dout), torch.autograd.grad(out32, z32, dout.float())
    assert dz16.dtype == torch.bfloat16 and torch.equal(dz16, dz32.bfloat16())


def test_where_torch_keeps_its_builds_unknown_only_costs_the_note(monkeypatch):
    import torch.utils.cpp_extension as extension

    def moved(*args, **kwargs):
        raise AttributeError("renamed in a later torch")

    monkeypatch.setattr(extension, "_get_build_directory", moved)
    assert cpu_kernel._built_before("dnahnet_cpu_kernels_x") is False
