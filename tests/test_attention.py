"""Causal attention: equals an explicit per-query reference, and its KV-cache steps equal the forward."""

import pytest
import torch

from dnahnet.nn.attention import CausalMHA
from tests.reference import attention_reference


@pytest.mark.parametrize("window", [-1, 0, 4])
@pytest.mark.parametrize("rotary", [0, 4, 8])
def test_forward_equals_per_query_reference(window, rotary):
    torch.manual_seed(0)
    m = CausalMHA(32, 4, rotary_emb_dim=rotary, window_size=window).double()
    u = torch.randn(2, 13, 32, dtype=torch.float64)
    fast = m(u)
    ref = attention_reference(m, u)
    assert ((fast - ref).abs().max() / ref.abs().max()) < 1e-10


@pytest.mark.parametrize("window", [-1, 3])
def test_kv_cache_steps_reproduce_forward(window):
    torch.manual_seed(1)
    m = CausalMHA(32, 4, rotary_emb_dim=4, window_size=window).double()
    u = torch.randn(3, 17, 32, dtype=torch.float64)
    full = m(u)
    cache = m.allocate_inference_cache(3, 17, dtype=torch.float64)
    stepped = torch.cat([m.step(u[:, t : t + 1], cache) for t in range(17)], dim=1)
    assert ((stepped - full).abs().max() / full.abs().max()) < 1e-10


def test_rows_advance_independently_under_an_update_mask():
    torch.manual_seed(2)
    m = CausalMHA(16, 2, rotary_emb_dim=4).double()
    u = torch.randn(2, 6, 16, dtype=torch.float64)
    cache = m.allocate_inference_cache(2, 6, dtype=torch.float64)
    outs = []
    for t in range(6):
        out = m.step(u[:, t : t + 1], cache, update=torch.tensor([True, t % 2 == 0]))
        outs.append(out)
    assert cache.lengths.tolist() == [6, 3]
    # Row 1 saw positions 0, 2, 4 as its sequence.
    ref = m(u[1:2, [0, 2, 4]])
    torch.testing.assert_close(outs[4][1, 0], ref[0, 2], rtol=1e-10, atol=1e-10)


def test_full_cache_is_reported():
    m = CausalMHA(16, 2)
    cache = m.allocate_inference_cache(1, 2)
    m.step(torch.randn(1, 1, 16), cache)
    m.step(torch.randn(1, 1, 16), cache)
    with pytest.raises(RuntimeError, match="cache full"):
        m.step(torch.randn(1, 1, 16), cache)


@pytest.mark.parametrize("length,window,block", [
    (1, 0, 128), (13, 4, 128), (100, 16, 128), (50, 49, 128), (64, 7, 128), (300, 130, 128),
    (100, 16, 8), (101, 20, 8), (50, 49, 8), (37, 3, 8),  # windows spanning several blocks, or one
])
def test_blocked_sliding_window_equals_masked_full_attention_with_gradients(monkeypatch, length, window, block):
    # The blocked path only ever builds (block x (block + window rounded up to blocks)) score
    # blocks; it must equal full attention under the same causal window mask, forward and backward.
    import torch.nn.functional as F

    import dnahnet.nn.attention as attention
    from dnahnet.nn.attention import sliding_window_attention, window_mask

    monkeypatch.setattr(attention, "WINDOW_BLOCK", block)

    gen = torch.Generator().manual_seed(length + window)
    q, k, v = (torch.randn(2, 3, length, 8, dtype=torch.float64, generator=gen, requires_grad=True) for _ in range(3))
    pos = torch.arange(length)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=window_mask(pos, pos, window))
    out = sliding_window_attention(q, k, v, window)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    w = torch.randn(out.shape, dtype=torch.float64, generator=gen)
    g_ref = torch.autograd.grad((ref * w).sum(), (q, k, v))
    g_out = torch.autograd.grad((out * w).sum(), (q, k, v))
    for got, want in zip(g_out, g_ref):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_traced_rotary_tables_are_one_opaque_operator_and_equal_eager():
    """Traced, the cos/sin tables come from `dnahnet::rotary_table` (so Inductor cannot fuse their float64
    pow/cos/sin into the rotation of every head); the layer's output and gradients equal eager."""
    from torch._dynamo.testing import AotEagerAndRecordGraphs

    torch.manual_seed(3)
    layer = CausalMHA(32, 4, rotary_emb_dim=8)
    u = torch.randn(2, 19, 32, requires_grad=True)
    eager = layer(u)
    eager.square().sum().backward()
    eager_grads = [u.grad.clone()] + [p.grad.clone() for p in layer.parameters()]
    u.grad = None
    layer.zero_grad()
    torch._dynamo.reset()
    backend = AotEagerAndRecordGraphs()
    traced = torch.compile(layer, backend=backend, fullgraph=True)(u)
    traced.square().sum().backward()
    assert any(node.target is torch.ops.dnahnet.rotary_table.default
               for graph in backend.fw_graphs for node in graph.graph.nodes)
    torch.testing.assert_close(traced, eager, rtol=0, atol=1e-6)
    for got, want in zip([u.grad] + [p.grad for p in layer.parameters()], eager_grads):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
