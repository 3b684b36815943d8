"""dnahnet.nn.cpu_kernel's operators outside Mamba-2: attention's rotary embedding, the MLP's gate and the routing's
cosine similarities equal their PyTorch forms in float64, forward and backward, and the modules use them only where
asked. Marked slow and skipped, with the reason, where the kernel cannot be built (as tests/test_cpu_kernel.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dnahnet.nn import cpu_kernel
from dnahnet.nn.attention import CausalMHA, apply_rotary
from dnahnet.nn.chunking import RoutingModule
from dnahnet.nn.isotropic import SwiGLU
from dnahnet.nn.rotary_table import rotary_cos_sin

pytestmark = pytest.mark.slow


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max() / b.detach().double().abs().max())


@pytest.mark.parametrize("heads,head,rotary", [(4, 32, 16), (2, 16, 16), (3, 64, 32)])
def test_the_rotary_kernel_equals_the_float64_split_and_rotation_forward_and_backward(cpu_kernel_built, heads, head, rotary):
    """qkv is read where it lies (every other position of a wider batch); the gradients arrive head-major, as SDPA's
    backward gives them; channels past the rotary dimension pass through."""
    gen = torch.Generator().manual_seed(0)
    b, length = 3, 37
    wide = torch.randn(b, 2 * length, 3, heads, head, generator=gen, dtype=torch.float64)
    cos, sin = rotary_cos_sin(torch.arange(length) + 5, rotary, dtype=torch.float64)
    leaf64, leaf32 = wide.clone().requires_grad_(), wide.float().requires_grad_()
    q, k, v = leaf64[:, ::2].unbind(2)
    want = (apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v)
    got = cpu_kernel.rotary_qkv(leaf32[:, ::2], cos.float(), sin.float())
    ups = [torch.randn(b, heads, length, head, generator=gen, dtype=torch.float64).transpose(1, 2) for _ in range(3)]
    (grad_want,) = torch.autograd.grad(want, leaf64, ups)
    (grad_got,) = torch.autograd.grad(got, leaf32, [u.float() for u in ups])
    for a, w in zip((*got, grad_got), (*want, grad_want)):
        assert _relative(a, w) < 1e-6
    assert all(t.is_contiguous() and t.dtype == torch.float32 for t in got)
    # bf16 (the projection's output under autocast): the float32 result rounded once, gradients in bf16.
    low = wide[:, ::2].bfloat16().requires_grad_()
    got16 = cpu_kernel.rotary_qkv(low, cos.float(), sin.float())
    for a, w in zip(got16, cpu_kernel.rotary_qkv(low.detach().float(), cos.float(), sin.float())):
        assert a.dtype == torch.bfloat16 and torch.equal(a, w.bfloat16())
    (grad16,) = torch.autograd.grad(got16, low, [torch.ones_like(t) for t in got16])
    assert grad16.dtype == torch.bfloat16


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16-autocast"])
def test_attention_on_the_rotary_kernel_equals_pytorch_in_one_pass_and_continued(cpu_kernel_built, bf16):
    """The layer's outputs and gradients with and without the kernel, over a whole input and continued from a
    window cache (positions that do not start at 0)."""
    from dnahnet.nn.attention import WindowCache

    torch.manual_seed(0)
    layer = CausalMHA(64, 4, rotary_emb_dim=8, window_size=6)
    x = torch.randn(2, 20, 64)
    results = []
    for asked in (False, True):
        layer.cpu_kernel = asked
        layer.zero_grad()
        leaf = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            whole = layer(leaf)
            cache = WindowCache(k=torch.zeros(2, 0, 4, 16), v=torch.zeros(2, 0, 4, 16))
            continued = torch.cat([layer(leaf[:, :9], cache=cache), layer(leaf[:, 9:], cache=cache)], dim=1)
        (whole.float().square().sum() + continued.float().sum()).backward()
        results.append((whole, continued, leaf.grad, layer.Wqkv.weight.grad))
    tolerance = 2e-2 if bf16 else 1e-5
    for a, w in zip(*reversed(results)):
        assert _relative(a, w) < tolerance


def test_the_rotary_kernel_runs_only_where_asked_and_eagerly(cpu_kernel_built, monkeypatch):
    made = []
    real = cpu_kernel.rotary_qkv
    monkeypatch.setattr(cpu_kernel, "rotary_qkv", lambda *a: made.append(1) or real(*a))
    layer = CausalMHA(32, 2, rotary_emb_dim=8)
    x = torch.randn(1, 5, 32)
    layer.cpu_kernel = False
    layer(x)
    assert not made
    layer.cpu_kernel = True
    layer(x)
    assert made == [1]
    layer.double()(x.double())  # float64 stays in PyTorch
    assert made == [1]
    torch.compile(layer.float(), backend="aot_eager", fullgraph=True)(x)  # traced: Inductor fuses the rotation itself
    assert made == [1]


@pytest.mark.parametrize("width", [96, 16])
def test_the_gate_kernel_equals_the_float64_value_times_silu_gate(cpu_kernel_built, width):
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(5, 7, 2 * width + 8, generator=gen, dtype=torch.float64) * 3
    leaf64, leaf32 = h.clone().requires_grad_(), h.float().requires_grad_()
    value, gate = leaf64[..., 4:4 + 2 * width].chunk(2, dim=-1)
    want = value * F.silu(gate)
    got = cpu_kernel.swiglu(leaf32[..., 4:4 + 2 * width])
    up = torch.randn(5, 7, width, generator=gen, dtype=torch.float64)
    (grad_want,), (grad_got,) = torch.autograd.grad(want, leaf64, up), torch.autograd.grad(got, leaf32, up.float())
    assert _relative(got, want) < 1e-6 and _relative(grad_got, grad_want) < 1e-6
    assert float(grad_got[..., :4].abs().max()) == 0.0  # outside the slice: no gradient
    low = h.bfloat16().requires_grad_()
    got16 = cpu_kernel.swiglu(low[..., 4:4 + 2 * width])
    assert got16.dtype == torch.bfloat16
    assert torch.equal(got16, cpu_kernel.swiglu(low.detach().float()[..., 4:4 + 2 * width]).bfloat16())


def test_an_mlp_on_the_gate_kernel_equals_pytorch_and_keeps_the_empty_official_mlp(cpu_kernel_built):
    torch.manual_seed(0)
    mlp = SwiGLU(32, 48)
    x = torch.randn(2, 9, 32)
    outs = []
    for asked in (False, True):
        mlp.cpu_kernel = asked
        mlp.zero_grad()
        y = mlp(x)
        y.square().sum().backward()
        outs.append((y, mlp.fc1.weight.grad, mlp.fc2.weight.grad))
    for a, w in zip(*reversed(outs)):
        assert _relative(a, w) < 1e-5
    empty = SwiGLU(32, 0)
    empty.cpu_kernel = True
    assert torch.equal(empty(x), torch.zeros_like(x))


def _routing_pair(d: int) -> tuple[RoutingModule, torch.Tensor]:
    torch.manual_seed(0)
    routing = RoutingModule(d)
    with torch.no_grad():
        routing.q_proj_layer.weight.add_(0.3 * torch.randn(d, d))
        routing.k_proj_layer.weight.add_(0.3 * torch.randn(d, d))
    return routing, torch.randn(3, 40, d)


def _pairwise_probs(routing: RoutingModule, h: torch.Tensor) -> torch.Tensor:
    """p_t as the routing module defines it: F.normalize of separate projections of the shifted slices."""
    q = F.normalize(F.linear(h[:, :-1], routing.q_proj_layer.weight.to(h.dtype)), dim=-1)
    k = F.normalize(F.linear(h[:, 1:], routing.k_proj_layer.weight.to(h.dtype)), dim=-1)
    return torch.clamp((1.0 - (q * k).sum(-1)) / 2.0, 0.0, 1.0)


@pytest.mark.parametrize("asked", [False, True], ids=["pytorch", "kernel"])
def test_the_routing_probabilities_from_one_projection_equal_the_float64_pairwise_form(request, asked):
    """Both paths of `_adjacent_probs` against the definition in float64, probabilities and the gradients of the
    input and both projections; a zero hidden state takes F.normalize's eps clamp."""
    if asked:
        request.getfixturevalue("cpu_kernel_built")
    routing, h = _routing_pair(64)
    h[1, 5] = 0.0
    reference = RoutingModule(64).double()
    reference.load_state_dict(routing.state_dict())
    h64 = h.double().requires_grad_()
    want = _pairwise_probs(reference, h64)
    up = torch.randn(want.shape, dtype=torch.float64)
    grads_want = torch.autograd.grad(want, (h64, reference.q_proj_layer.weight, reference.k_proj_layer.weight), up)
    routing.cpu_kernel = asked
    h32 = h.clone().requires_grad_()
    got = routing._adjacent_probs(h32)
    grads = torch.autograd.grad(got, (h32, routing.q_proj_layer.weight, routing.k_proj_layer.weight), up.float())
    assert float((got.detach().double() - want.detach()).abs().max()) < 1e-6
    for a, w in zip(grads[1:], grads_want[1:]):
        assert _relative(a, w) < 1e-5
    # The input's gradient at the zero state is ~1/eps; elsewhere it is of order one.
    finite = torch.ones(3, 40, dtype=torch.bool)
    finite[1, 5] = False
    assert _relative(grads[0][finite], grads_want[0][finite]) < 1e-5
    assert _relative(grads[0][1, 5], grads_want[0][1, 5]) < 1e-5


def test_the_cosine_kernel_runs_only_where_asked_and_on_float32(cpu_kernel_built, monkeypatch):
    made = []
    real = cpu_kernel.adjacent_cosine
    monkeypatch.setattr(cpu_kernel, "adjacent_cosine", lambda *a: made.append(1) or real(*a))
    routing, h = _routing_pair(32)
    routing.cpu_kernel = False
    off = routing(h)
    assert not made
    routing.cpu_kernel = True
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the routing stays float32 under autocast
        on = routing(h)
    assert made == [1]
    assert torch.equal(on.boundary_mask, off.boundary_mask)
    assert float((on.boundary_prob - off.boundary_prob).detach().abs().max()) < 1e-6
    routing.double()(h.double())  # float64 stays in PyTorch
    assert made == [1]
