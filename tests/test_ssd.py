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
