"""Dynamic chunking pieces against hand-made inputs and explicit loops."""

import math

import pytest
import torch

from dnahnet.nn.chunking import (
    ChunkLayer,
    DeChunkLayer,
    RoutingModule,
    ema_scan,
    ema_sequential,
    ratio_loss,
    ste,
)
from tests.reference import dechunk_reference


def test_ema_scan_equals_explicit_loop():
    torch.manual_seed(0)
    z = torch.randn(3, 300, 5, dtype=torch.float64)  # longer than one scan chunk
    P = torch.rand(3, 300, dtype=torch.float64).clamp(1e-4, 1 - 1e-4)
    torch.testing.assert_close(ema_scan(z, P, chunk_size=64), ema_sequential(z, P), rtol=1e-9, atol=1e-12)


def test_dechunk_equals_position_loop():
    torch.manual_seed(1)
    p = torch.rand(2, 30, dtype=torch.float64)
    p[:, 0] = 1.0
    b = p > 0.5
    m = int(b.sum(-1).max())
    z = torch.randn(2, m, 4, dtype=torch.float64)
    out = DeChunkLayer(4)(z, b, p)
    torch.testing.assert_close(out, dechunk_reference(z, b, p), rtol=1e-9, atol=1e-12)


def test_routing_probability_follows_the_cosine_formula_with_identity_projections():
    r = RoutingModule(2).double()
    h = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]], dtype=torch.float64)
    out = r(h)
    # p_0 = 1; same direction -> 0; orthogonal -> 0.5 (a tie: not a boundary); opposite -> 1.
    torch.testing.assert_close(out.boundary_prob[0], torch.tensor([1.0, 0.0, 0.5, 1.0], dtype=torch.float64))
    assert out.boundary_mask[0].tolist() == [True, False, False, True]
    torch.testing.assert_close(out.selected_probs[0], torch.tensor([1.0, 1.0, 0.5, 1.0], dtype=torch.float64))


def test_routing_projections_start_as_identity():
    r = RoutingModule(8)
    assert torch.equal(r.q_proj_layer.weight, torch.eye(8)) and torch.equal(r.k_proj_layer.weight, torch.eye(8))


def test_chunk_layer_keeps_boundary_positions_in_order_with_a_validity_mask():
    h = torch.arange(12.0).reshape(2, 6, 1)
    b = torch.tensor([[1, 0, 1, 1, 0, 0], [1, 0, 0, 0, 0, 1]], dtype=torch.bool)
    chunks, mask = ChunkLayer()(h, b)
    assert chunks[0, :, 0].tolist() == [0.0, 2.0, 3.0]
    assert chunks[1, :2, 0].tolist() == [6.0, 11.0]
    assert mask.tolist() == [[True, True, True], [True, True, False]]


def test_ratio_loss_formula_on_hand_made_values():
    F_, G_ = torch.tensor(0.25), torch.tensor(0.4)
    N = 3.0
    expected = N / (N - 1) * ((N - 1) * 0.25 * 0.4 + 0.75 * 0.6)
    assert math.isclose(ratio_loss(F_, G_, N).item(), expected, rel_tol=1e-6)


@pytest.mark.parametrize("N", [2.0, 3.0, 5.0])
def test_ratio_loss_is_minimal_at_one_over_n(N):
    grid = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    values = torch.stack([ratio_loss(f, grid, N) for f in grid])  # rows F, columns G
    target = 1.0 / N
    at_target = ratio_loss(torch.tensor(target, dtype=torch.float64), torch.tensor(target, dtype=torch.float64), N)
    assert math.isclose(at_target.item(), 1.0, rel_tol=1e-9)
    # With F = G (the routing agrees with itself) the loss is minimal at 1/N.
    diag = torch.diagonal(values)
    assert abs(grid[diag.argmin()].item() - target) <= 0.01 + 1e-9


def test_ratio_loss_has_no_gradient_through_f():
    F_ = torch.tensor(0.3, requires_grad=True)
    G_ = torch.tensor(0.3, requires_grad=True)
    ratio_loss(F_, G_, 3.0).backward()
    assert F_.grad is None or F_.grad == 0
    assert G_.grad is not None and G_.grad != 0


def test_ste_is_one_forward_and_identity_backward():
    c = torch.tensor([0.6, 0.9], requires_grad=True)
    y = ste(c)
    assert torch.equal(y, torch.ones(2))
    (y * torch.tensor([2.0, 3.0])).sum().backward()
    assert c.grad.tolist() == [2.0, 3.0]


def test_realised_compression_is_positions_per_chunk_at_each_stage():
    from dnahnet.nn.chunking import RoutingOutput, realised_compression

    b1 = torch.tensor([[1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]], dtype=torch.bool)  # 12 positions -> 3 chunks
    b2 = torch.tensor([[1, 0, 0]], dtype=torch.bool)  # 3 chunks -> 1
    outs = [RoutingOutput(b.float(), b, torch.ones_like(b, dtype=torch.float32)) for b in (b1, b2)]
    assert realised_compression(outs) == [4.0, 3.0]


def test_ema_scan_past_the_dense_state_pass_and_its_gradients():
    """Over 64 chunks the chunk states pass in blocks; values and gradients equal the loop."""
    torch.manual_seed(3)
    z = torch.randn(2, 64 * 70 + 5, 3, dtype=torch.float64)
    P = torch.rand(2, z.shape[1], dtype=torch.float64).clamp(1e-4, 1 - 1e-4)
    torch.testing.assert_close(ema_scan(z, P, chunk_size=64), ema_sequential(z, P), rtol=1e-9, atol=1e-12)
    zs, Ps = z[:, :150].clone().requires_grad_(), P[:, :150].clone().requires_grad_()
    w = torch.randn(2, 150, 3, dtype=torch.float64)
    g_scan = torch.autograd.grad((ema_scan(zs, Ps, chunk_size=16) * w).sum(), (zs, Ps))
    g_loop = torch.autograd.grad((ema_sequential(zs, Ps) * w).sum(), (zs, Ps))
    for a, b in zip(g_scan, g_loop):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
