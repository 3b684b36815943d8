"""The chunked SSD scan equals the step-by-step recurrence."""

import pytest
import torch

from dnahnet.nn.ssd import segsum, ssd_chunked, ssd_sequential


def _inputs(b, l, h, p, g, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, l, h, p, dtype=torch.float64, generator=gen)
    a = -torch.rand(b, l, h, dtype=torch.float64, generator=gen) * 2
    B = torch.randn(b, l, g, n, dtype=torch.float64, generator=gen)
    C = torch.randn(b, l, g, n, dtype=torch.float64, generator=gen)
    return x, a, B, C


@pytest.mark.parametrize("length", [64, 67, 5, 1])
@pytest.mark.parametrize("with_initial_state", [False, True])
@pytest.mark.parametrize("groups", [1, 2])
def test_chunked_ssd_equals_sequential_recurrence(length, with_initial_state, groups):
    x, a, B, C = _inputs(2, length, 4, 3, groups, 5)
    init = torch.randn(2, 4, 3, 5, dtype=torch.float64) if with_initial_state else None
    y_fast, final_fast = ssd_chunked(x, a, B, C, chunk_size=16, initial_state=init)
    y_ref, final_ref = ssd_sequential(x, a, B, C, initial_state=init)
    assert y_fast.shape == y_ref.shape
    assert ((y_fast - y_ref).abs().max() / y_ref.abs().max()) < 1e-6
    assert ((final_fast - final_ref).abs().max() / final_ref.abs().max()) < 1e-6


def test_chunked_ssd_chains_across_calls_through_the_final_state():
    x, a, B, C = _inputs(1, 50, 2, 3, 1, 4)
    y_all, final_all = ssd_chunked(x, a, B, C, chunk_size=8)
    y1, s1 = ssd_chunked(x[:, :21], a[:, :21], B[:, :21], C[:, :21], chunk_size=8)
    y2, s2 = ssd_chunked(x[:, 21:], a[:, 21:], B[:, 21:], C[:, 21:], chunk_size=8, initial_state=s1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y_all, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s2, final_all, rtol=1e-10, atol=1e-12)


def test_segsum_is_sum_over_the_half_open_segment_and_minus_inf_above_the_diagonal():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    s = segsum(a)
    assert s[3, 1] == 3.0 + 4.0
    assert s[2, 2] == 0.0
    assert torch.isinf(s[0, 1]) and s[0, 1] < 0


@pytest.mark.parametrize("with_initial_state", [False, True])
def test_chunked_ssd_with_more_chunks_than_a_state_pass_block_equals_the_recurrence(with_initial_state):
    # chunk_size 2 over 301 bases gives 151 chunks: the blocked state pass
    # (blocks of STATE_PASS_BLOCK, padded last block) must match step by step.
    from dnahnet.nn.ssd import STATE_PASS_BLOCK

    x, a, B, C = _inputs(2, 301, 4, 3, 2, 5, seed=3)
    assert 301 // 2 + 2 > 2 * STATE_PASS_BLOCK
    init = torch.randn(2, 4, 3, 5, dtype=torch.float64) if with_initial_state else None
    y_fast, final_fast = ssd_chunked(x, a * 0.05, B, C, chunk_size=2, initial_state=init)
    y_ref, final_ref = ssd_sequential(x, a * 0.05, B, C, initial_state=init)
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(final_fast, final_ref, rtol=1e-9, atol=1e-9)


def test_blocked_state_pass_equals_the_dense_one_and_keeps_gradients():
    from dnahnet.nn.ssd import linear_recurrence

    gen = torch.Generator().manual_seed(1)
    u = torch.randn(1, 37, 1, 2, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    a = (-torch.rand(1, 1, 2, 37, dtype=torch.float64, generator=gen) * 0.3).requires_grad_()
    dense = linear_recurrence(u, a, block=64)
    blocked = linear_recurrence(u, a, block=8)
    torch.testing.assert_close(blocked, dense, rtol=1e-12, atol=1e-12)
    g_dense = torch.autograd.grad(dense.sum(), (u, a))
    g_blocked = torch.autograd.grad(blocked.sum(), (u, a))
    for gd, gb in zip(g_dense, g_blocked):
        torch.testing.assert_close(gb, gd, rtol=1e-10, atol=1e-10)


def test_chunked_ssd_computed_in_slices_of_chunks_equals_the_recurrence(monkeypatch):
    import dnahnet.nn.ssd as ssd

    x, a, B, C = _inputs(1, 77, 4, 3, 2, 5, seed=4)
    init = torch.randn(1, 4, 3, 5, dtype=torch.float64)
    whole = ssd_chunked(x, a, B, C, chunk_size=4, initial_state=init)
    monkeypatch.setattr(ssd, "INTRA_SLICE_POSITIONS", 12)  # 3 chunks per slice, a short last slice
    sliced = ssd_chunked(x, a, B, C, chunk_size=4, initial_state=init)
    y_ref, final_ref = ssd_sequential(x, a, B, C, initial_state=init)
    torch.testing.assert_close(sliced[0], y_ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(sliced[1], final_ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(sliced[0], whole[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_chunked_ssd_gradients_equal_the_recurrences_for_every_input(groups):
    # The intra-chunk blocks are recomputed in a hand-written backward: every input's
    # gradient (x, log-decay, B, C, initial state) must match autograd through the loop.
    x, a, B, C = _inputs(2, 45, 4, 3, groups, 5, seed=5)
    init = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    inputs = [t.clone().requires_grad_() for t in (x, a, B, C, init)]
    gen = torch.Generator().manual_seed(6)
    w_y = torch.randn(x.shape, dtype=torch.float64, generator=gen)
    w_s = torch.randn(init.shape, dtype=torch.float64, generator=gen)

    def grads(scan):
        y, s = scan(*inputs)
        return torch.autograd.grad((y * w_y).sum() + (s * w_s).sum(), inputs)

    fast = grads(lambda x, a, B, C, s0: ssd_chunked(x, a, B, C, chunk_size=8, initial_state=s0))
    ref = grads(lambda x, a, B, C, s0: ssd_sequential(x, a, B, C, initial_state=s0))
    for got, want in zip(fast, ref):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
