"""Pure-PyTorch Mamba-2: matches its definition, steps like it runs, and mamba_ssm's parameter layout."""

import pytest
import torch

import dnahnet.nn.mamba2 as mamba2_module
from dnahnet.nn.mamba2 import Mamba2
from tests.reference import mamba2_reference


def _model(ngroups=1, chunk_size=8, seed=0):
    torch.manual_seed(seed)
    return Mamba2(32, d_state=8, d_conv=4, expand=2, headdim=16, ngroups=ngroups, chunk_size=chunk_size).double()


@pytest.mark.parametrize("length", [16, 19])
@pytest.mark.parametrize("ngroups", [1, 2])
def test_forward_equals_position_by_position_definition(length, ngroups):
    m = _model(ngroups)
    u = torch.randn(2, length, 32, dtype=torch.float64)
    fast = m(u)
    ref = mamba2_reference(m, u)
    assert ((fast - ref).abs().max() / ref.abs().max()) < 1e-6


def test_step_loop_reproduces_forward():
    m = _model()
    u = torch.randn(3, 21, 32, dtype=torch.float64)
    full = m(u)
    cache = m.allocate_inference_cache(3, dtype=torch.float64)
    stepped = torch.cat([m.step(u[:, t : t + 1], cache) for t in range(21)], dim=1)
    assert ((stepped - full).abs().max() / full.abs().max()) < 1e-6


def test_prefill_then_step_reproduces_forward_for_rows_of_different_length():
    m = _model()
    u = torch.randn(2, 20, 32, dtype=torch.float64)
    full0 = m(u[:1])
    full1 = m(torch.cat([u[1:, :9], u[1:, 12:]], dim=1))
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 9:] = False  # row 1 has only 9 valid positions in the prefill
    cache = m.allocate_inference_cache(2, dtype=torch.float64)
    m(u[:, :12], cache, mask)
    stepped = torch.cat([m.step(u[:, t : t + 1], cache) for t in range(12, 20)], dim=1)
    torch.testing.assert_close(stepped[0], full0[0, 12:], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(stepped[1], full1[0, 9:17], rtol=1e-9, atol=1e-9)


def test_step_update_mask_freezes_rows():
    m = _model()
    cache = m.allocate_inference_cache(2, dtype=torch.float64)
    m.step(torch.randn(2, 1, 32, dtype=torch.float64), cache)
    before = (cache.conv_state.clone(), cache.ssm_state.clone())
    m.step(torch.randn(2, 1, 32, dtype=torch.float64), cache, update=torch.tensor([True, False]))
    assert torch.equal(cache.conv_state[1], before[0][1]) and torch.equal(cache.ssm_state[1], before[1][1])
    assert not torch.equal(cache.ssm_state[0], before[1][0])


def test_parameter_names_and_shapes_match_mamba_ssm():
    m = Mamba2(32, d_state=16, d_conv=4, expand=2, headdim=64)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "dt_bias": (1,), "A_log": (1,), "D": (1,), "in_proj.weight": (161, 32),
        "conv1d.weight": (96, 1, 4), "conv1d.bias": (96,), "norm.weight": (64,), "out_proj.weight": (32, 64),
    }


def test_initialisation_follows_mamba_ssm_ranges():
    m = Mamba2(64, d_state=16, headdim=16)
    dt = torch.nn.functional.softplus(m.dt_bias)
    assert (dt >= 1e-3 - 1e-6).all() and (dt <= 0.1 + 1e-6).all()
    A = torch.exp(m.A_log)
    assert (A >= 1).all() and (A <= 16).all()
    assert torch.equal(m.D, torch.ones_like(m.D))


def test_kernel_switch_keeps_cpu_on_the_pure_path(monkeypatch):
    m = _model()
    u = torch.randn(1, 10, 32, dtype=torch.float64)
    ref = m(u)
    monkeypatch.setattr(mamba2_module, "USE_KERNELS", False)
    assert torch.equal(m(u), ref)
    assert isinstance(mamba2_module.kernels_available(), bool)


def test_width_not_divisible_by_headdim_is_refused():
    with pytest.raises(ValueError, match="headdim"):
        Mamba2(24, headdim=32)


def test_forward_continues_from_a_used_cache_across_segments():
    """Segments of one sequence through a carried cache (one shorter than the conv) equal one forward."""
    m = _model()
    u = torch.randn(2, 37, 32, dtype=torch.float64)
    full = m(u)
    cache = m.allocate_inference_cache(2, dtype=torch.float64)
    cuts = [0, 10, 12, 29, 37]  # a 2-position segment is shorter than d_conv
    parts = torch.cat([m(u[:, a:b], cache) for a, b in zip(cuts, cuts[1:])], dim=1)
    torch.testing.assert_close(parts, full, rtol=1e-10, atol=1e-10)
    following = torch.randn(2, 1, 32, dtype=torch.float64)  # the cache left behind also steps on exactly
    torch.testing.assert_close(m.step(following, cache), m(torch.cat([u, following], 1))[:, -1:], rtol=1e-10, atol=1e-10)


def test_masked_row_keeps_its_state_through_later_segments():
    m = _model()
    u = torch.randn(2, 30, 32, dtype=torch.float64)
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 7:] = False  # row 1 ends inside the first segment
    cache = m.allocate_inference_cache(2, dtype=torch.float64)
    m(u[:, :16], cache, mask[:, :16])
    m(u[:, 16:], cache, mask[:, 16:])
    alone = m.allocate_inference_cache(1, dtype=torch.float64)
    m(u[1:, :7], alone)
    torch.testing.assert_close(cache.ssm_state[1:], alone.ssm_state, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(cache.conv_state[1:], alone.conv_state, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("length", [1, 2, 3, 5, 40])  # shorter than, equal to and longer than the kernel
def test_causal_conv_and_its_hand_written_backward_equal_torch_conv1d(length):
    """The shifted multiply-adds and `_CausalConv`'s backward give conv1d's output and all three gradients."""
    torch.manual_seed(length)
    x = torch.randn(3, length, 10, dtype=torch.float64, requires_grad=True)
    w = torch.randn(10, 1, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(10, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.conv1d(x.transpose(1, 2), w, b, padding=3, groups=10)[..., :length].transpose(1, 2)
    out = mamba2_module.causal_depthwise_conv(x, w, b)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(ref).transpose(0, 1).contiguous().transpose(0, 1)  # a non-contiguous gradient
    for got, want in zip(torch.autograd.grad(out, (x, w, b), upstream), torch.autograd.grad(ref, (x, w, b), upstream)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(mamba2_module.causal_depthwise_conv, (x, w, b))


@pytest.mark.parametrize("channels", [1, 10])  # one channel: the transposed taps would already be contiguous
def test_causal_conv_with_a_history_equals_conv1d_over_history_and_input(channels):
    """The cached path (no hand-written backward): conv1d's values and gradients over [history, x]."""
    torch.manual_seed(channels)
    x = torch.randn(2, 6, channels, dtype=torch.float64, requires_grad=True)
    history = torch.randn(2, 3, channels, dtype=torch.float64, requires_grad=True)
    w = torch.randn(channels, 1, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(channels, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.conv1d(torch.cat([history, x], 1).transpose(1, 2), w, b, groups=channels).transpose(1, 2)
    out = mamba2_module.causal_depthwise_conv(x, w, b, history=history)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(ref)
    for got, want in zip(torch.autograd.grad(out, (x, history, w, b), upstream),
                         torch.autograd.grad(ref, (x, history, w, b), upstream)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_conv_taps_are_a_contiguous_copy_that_a_compiled_graph_keeps():
    """(C, 1, K) -> (K, C), contiguous, never a view of the weight; traced whole by torch.compile."""
    from dnahnet.nn.conv_taps import contiguous_taps

    w = torch.randn(6, 1, 4)
    taps = contiguous_taps(w)
    assert taps.shape == (4, 6) and taps.is_contiguous() and taps.data_ptr() != w.data_ptr()
    torch.testing.assert_close(taps, w.squeeze(1).t(), rtol=0, atol=0)
    compiled = torch.compile(contiguous_taps, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(w), taps, rtol=0, atol=0)
    assert torch.autograd.gradcheck(contiguous_taps, (torch.randn(6, 1, 4, dtype=torch.float64, requires_grad=True),))


def test_valid_positions_do_not_depend_on_the_padding_after_them():
    """Why mamba_ssm's scan may take an H-Net main network's masked call: without a cache, a
    left-aligned mask changes only the padded positions' outputs."""
    m = _model()
    u = torch.randn(2, 19, 32, dtype=torch.float64)
    mask = torch.ones(2, 19, dtype=torch.bool)
    mask[1, 11:] = False
    masked, unmasked = m(u, mask=mask), m(u)
    assert torch.equal(masked[0], unmasked[0])
    assert torch.allclose(masked[1, :11], unmasked[1, :11], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(masked[1, 11:], unmasked[1, 11:])  # the mask did act on the padding


def test_the_gpu_scan_takes_masked_calls_but_not_a_ragged_prefill(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr(mamba2_module, "_kernel_scan", lambda *a, **k: None)
    monkeypatch.setattr(mamba2_module, "USE_KERNELS", True)
    m = _model()
    on_gpu, on_cpu = SimpleNamespace(is_cuda=True), SimpleNamespace(is_cuda=False)
    mask, cache = torch.ones(1, 4, dtype=torch.bool), m.allocate_inference_cache(1)
    assert m._scan_on_gpu_kernel(on_gpu, None, None)
    assert m._scan_on_gpu_kernel(on_gpu, None, mask)
    assert m._scan_on_gpu_kernel(on_gpu, cache, None)
    assert not m._scan_on_gpu_kernel(on_gpu, cache, mask)
    assert not m._scan_on_gpu_kernel(on_cpu, None, None)
    m.use_kernels = False
    assert not m._scan_on_gpu_kernel(on_gpu, None, None)
