"""The chunked SSD scan equals the step-by-step recurrence."""

import pytest
import torch

import dnahnet.nn.ssd as ssd_module
from dnahnet.nn.ssd import segsum, ssd_chunked, ssd_sequential


@pytest.fixture(params=["factored", "per-head decay"])
def scan_path(request, monkeypatch):
    """Run a test through both intra-chunk forms; fails if the wanted one was not taken where it applies."""
    taken = []
    original = ssd_module._ssd_factored

    def spy(x, log_decay, B, C, q, initial_state):
        out = original(x, log_decay, B, C, q, initial_state)
        taken.append((out is not None, B.shape[-2] < x.shape[-2]))
        return out

    monkeypatch.setattr(ssd_module, "_ssd_factored", spy)
    monkeypatch.setattr(ssd_module, "FACTORED_EXPONENT_LIMIT", 1e3 if request.param == "factored" else -1.0)
    yield request.param
    assert taken, "ssd_chunked did not consult the factored form"
    assert all(used == (request.param == "factored" and shared) for used, shared in taken)


@pytest.fixture(params=["stepwise", "matmul"])
def state_pass(request, monkeypatch):
    """Pass chunk states both ways (step by step, or as decay matmuls); fails if the wanted
    one was not the one taken."""
    taken = []
    stepwise, matmuls = ssd_module._StepwiseRecurrence.apply, ssd_module._matmul_recurrence

    def spy(name, fn):
        def run(*args, **kwargs):
            taken.append(name)
            return fn(*args, **kwargs)
        return run

    monkeypatch.setattr(ssd_module._StepwiseRecurrence, "apply", spy("stepwise", stepwise))
    monkeypatch.setattr(ssd_module, "_matmul_recurrence", spy("matmul", matmuls))
    monkeypatch.setattr(ssd_module, "STEPWISE_MIN_STATE", 0 if request.param == "stepwise" else 10**12)
    yield request.param
    assert taken and set(taken) == {request.param}


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
def test_chunked_ssd_equals_sequential_recurrence(length, with_initial_state, groups, scan_path, state_pass):
    x, a, B, C = _inputs(2, length, 4, 3, groups, 5)
    init = torch.randn(2, 4, 3, 5, dtype=torch.float64) if with_initial_state else None
    y_fast, final_fast = ssd_chunked(x, a, B, C, chunk_size=16, initial_state=init)
    y_ref, final_ref = ssd_sequential(x, a, B, C, initial_state=init)
    assert y_fast.shape == y_ref.shape
    assert ((y_fast - y_ref).abs().max() / y_ref.abs().max()) < 1e-6
    assert ((final_fast - final_ref).abs().max() / final_ref.abs().max()) < 1e-6


def test_chunked_ssd_chains_across_calls_through_the_final_state(scan_path, state_pass):
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


def test_transposed_segsum_is_the_transpose_laid_out_contiguously():
    """The dense chunk-state pass multiplies by the transpose; built in that layout, it saves no view."""
    a = torch.randn(3, 2, 9, dtype=torch.float64)
    t = segsum(a, transposed=True)
    assert torch.equal(t, segsum(a).mT) and t.is_contiguous()


@pytest.mark.parametrize("with_initial_state", [False, True])
def test_chunked_ssd_with_more_chunks_than_a_state_pass_block_equals_the_recurrence(with_initial_state, scan_path, state_pass):
    # chunk_size 2 over 301 bases gives 151 chunks: the two-level state pass (blocks of
    # STATE_BLOCK, padded last block) and the stepwise one must match the recurrence.
    from dnahnet.nn.ssd import DENSE_MAX_STATES, STATE_BLOCK

    x, a, B, C = _inputs(2, 301, 4, 3, 2, 5, seed=3)
    assert 301 // 2 + 2 > DENSE_MAX_STATES and (301 // 2 + 2) % STATE_BLOCK
    init = torch.randn(2, 4, 3, 5, dtype=torch.float64) if with_initial_state else None
    y_fast, final_fast = ssd_chunked(x, a * 0.05, B, C, chunk_size=2, initial_state=init)
    y_ref, final_ref = ssd_sequential(x, a * 0.05, B, C, initial_state=init)
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(final_fast, final_ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("heads", [1, 2])  # one head: the dense pass multiplies untransposed (the EMA's case)
def test_stepwise_and_two_level_state_passes_equal_the_dense_one_with_gradients(heads):
    from dnahnet.nn.ssd import _StepwiseRecurrence, _dense_recurrence, _two_level_recurrence

    gen = torch.Generator().manual_seed(1)
    u = torch.randn(2, 37, 1, heads, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    a = (-torch.rand(2, 1, heads, 37, dtype=torch.float64, generator=gen) * 0.3).requires_grad_()
    w = torch.randn(u.shape, dtype=torch.float64, generator=gen)  # a gradient that differs at every step
    dense = _dense_recurrence(u, a)
    g_dense = torch.autograd.grad((dense * w).sum(), (u, a))
    # 37 = 4 blocks of 8 and 5 items of a padded fifth (two-level)
    for other in (_StepwiseRecurrence.apply(u, a), _two_level_recurrence(u, a, 8)):
        torch.testing.assert_close(other, dense, rtol=1e-12, atol=1e-12)
        for want, got in zip(g_dense, torch.autograd.grad((other * w).sum(), (u, a))):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("steps,data_dependent,two_level", [(8, False, False), (70, False, True), (70, True, False)])
def test_traced_state_pass_is_dense_only_for_short_counts_and_equals_eager(monkeypatch, steps, data_dependent, two_level):
    """Traced, a long chunk-state pass must not build a (T x T) matrix (quadratic in the input length):
    past DENSE_MAX_STATES states it takes the two-level form, with the dense pass's values and gradients.
    A count that may be data-dependent (an inner stage's) stays dense, the form Inductor lowers for it."""
    calls = []
    two_level_form = ssd_module._two_level_recurrence
    monkeypatch.setattr(ssd_module, "_two_level_recurrence", lambda *args: calls.append(1) or two_level_form(*args))
    assert 8 <= ssd_module.DENSE_MAX_STATES < 70
    gen = torch.Generator().manual_seed(4)
    u = torch.randn(2, steps, 1, 2, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    a = (-torch.rand(2, 1, 2, steps, dtype=torch.float64, generator=gen) * 0.3).requires_grad_()
    w = torch.randn(u.shape, dtype=torch.float64, generator=gen)
    torch._dynamo.reset()
    traced = torch.compile(ssd_module.linear_recurrence, backend="aot_eager", fullgraph=True, dynamic=False)(
        u, a, length_is_data_dependent=data_dependent)
    assert bool(calls) == two_level
    want = ssd_module._dense_recurrence(u, a)
    torch.testing.assert_close(traced, want, rtol=1e-12, atol=1e-12)
    for got, expected in zip(torch.autograd.grad((traced * w).sum(), (u, a)), torch.autograd.grad((want * w).sum(), (u, a))):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_only_inner_stages_mamba2_layers_scan_a_data_dependent_length():
    """Stage 0 runs over the input's length, every inner stage over a chunk count."""
    from dnahnet.config import model_config_from_preset
    from dnahnet.nn.hnet import HNetLM
    from dnahnet.nn.mamba2 import Mamba2

    model = HNetLM(model_config_from_preset("tiny-2stage"))
    flags = {name: m.length_is_data_dependent for name, m in model.named_modules() if isinstance(m, Mamba2)}
    inner = {name for name in flags if name.startswith("backbone.main_network.")}
    assert inner and len(inner) < len(flags)
    assert {name for name, flag in flags.items() if flag} == inner


def test_stepwise_state_pass_of_bf16_states_sums_in_float32():
    """A bf16 state summed over 200 chunks step by step in bf16 would drift; the pass runs in fp32 and
    rounds once, so it stays within one bf16 rounding of the float64 result, in the input's dtype."""
    from dnahnet.nn.ssd import _StepwiseRecurrence, _dense_recurrence

    gen = torch.Generator().manual_seed(2)
    u = torch.randn(1, 200, 1, 2, 4, 4, dtype=torch.float64, generator=gen)
    a = -torch.rand(1, 1, 2, 200, dtype=torch.float64, generator=gen) * 0.01  # slow decay: long memory
    got_bf16 = _StepwiseRecurrence.apply(u.bfloat16(), a.float())
    assert got_bf16.dtype == torch.bfloat16
    exact = _dense_recurrence(u.bfloat16().double(), a.float().double())
    torch.testing.assert_close(got_bf16.double(), exact, rtol=2**-8, atol=1e-6)


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


def test_gradients_through_slices_of_chunks_equal_those_of_one_slice(monkeypatch):
    """Each slice reads its own stretch of the carried states: gradients flow back to every chunk state once."""
    import dnahnet.nn.ssd as ssd

    x, a, B, C = _inputs(1, 77, 4, 3, 4, 5, seed=11)
    init = torch.randn(1, 4, 3, 5, dtype=torch.float64)
    w = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(12))

    def grads():
        inputs = [t.clone().requires_grad_() for t in (x, a, B, C, init)]
        y, s = ssd_chunked(*inputs[:4], chunk_size=4, initial_state=inputs[4])
        return torch.autograd.grad((y * w).sum() + s.sum(), inputs)

    whole = grads()
    monkeypatch.setattr(ssd, "INTRA_SLICE_POSITIONS", 12)
    for got, want in zip(grads(), whole):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_chunked_ssd_gradients_equal_the_recurrences_for_every_input(groups, scan_path, state_pass):
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


def test_fast_decaying_heads_and_per_head_b_c_take_the_per_head_path_and_stay_exact():
    """Past FACTORED_EXPONENT_LIMIT (or with a B/C per head) the factored form declines; the result is unchanged."""
    x, a, B, C = _inputs(2, 40, 4, 3, 1, 5, seed=7)
    fast = a * 20  # up to 40 per step: a 16-position chunk spans far more than twice the limit
    q = 16
    assert ssd_module._ssd_factored(x[:, :32], fast[:, :32], B[:, :32], C[:, :32], q, None) is None
    x4, a4, B4, C4 = _inputs(2, 32, 4, 3, 4, 5, seed=7)
    assert ssd_module._ssd_factored(x4, a4, B4, C4, q, None) is None
    assert ssd_module._ssd_factored(x[:, :32], a[:, :32], B[:, :32], C[:, :32], q, None) is not None
    y, final = ssd_chunked(x, fast, B, C, chunk_size=q)
    y_ref, final_ref = ssd_sequential(x, fast, B, C)
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(final, final_ref, rtol=1e-9, atol=1e-9)


def test_factored_form_in_float32_at_its_exponent_limit_keeps_float32_accuracy():
    """Decays that push the row/column factors to just under e^40: outputs and gradients stay finite and close."""
    gen = torch.Generator().manual_seed(8)
    b, l, h, p, n, q = 2, 64, 4, 8, 6, 32
    # Per-step log-decay -2.4 over chunks of 32: the middle reference (after 17 steps) is 38.4 below the
    # first position's cumulative decay and 36 above the last's, just under the limit of 40.
    a64 = torch.full((b, l, h), -2.4, dtype=torch.float64)
    x64 = torch.randn(b, l, h, p, dtype=torch.float64, generator=gen)
    B64 = torch.randn(b, l, 1, n, dtype=torch.float64, generator=gen)
    C64 = torch.randn(b, l, 1, n, dtype=torch.float64, generator=gen)
    inputs32 = [t.float().requires_grad_() for t in (x64, a64, B64, C64)]
    y32, s32 = ssd_module._ssd_factored(*inputs32, q, None)
    y_ref, s_ref = ssd_sequential(x64, a64, B64, C64)
    torch.testing.assert_close(y32.double(), y_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s32.double(), s_ref, rtol=1e-4, atol=1e-4)
    w = torch.randn(y32.shape, generator=gen)
    grads32 = torch.autograd.grad((y32 * w).sum(), inputs32)
    inputs64 = [t.detach().double().requires_grad_() for t in inputs32]
    y64, _ = ssd_sequential(*inputs64)
    grads64 = torch.autograd.grad((y64 * w.double()).sum(), inputs64)
    for got, want in zip(grads32, grads64):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got.double(), want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("with_initial_state", [False, True])
def test_heads_too_fast_for_the_factored_form_run_per_head_beside_the_rest(with_initial_state, monkeypatch):
    """One group of B/C, heads 0 and 2 past the limit: those take the per-head path, the others the factored
    one, and outputs, final state and every gradient still equal the recurrence's."""
    x, a, B, C = _inputs(2, 45, 4, 3, 1, 5, seed=9)
    a = a * torch.tensor([20.0, 1.0, 20.0, 1.0], dtype=torch.float64)
    init = torch.randn(2, 4, 3, 5, dtype=torch.float64) if with_initial_state else None
    calls = []
    original = ssd_module._factored_scan
    monkeypatch.setattr(ssd_module, "_factored_scan", lambda x, *rest: calls.append(x.shape[2]) or original(x, *rest))
    inputs = [t.clone().requires_grad_() for t in (x, a, B, C)] + ([init.clone().requires_grad_()] if init is not None else [])
    gen = torch.Generator().manual_seed(10)
    w_y = torch.randn(x.shape, dtype=torch.float64, generator=gen)
    w_s = torch.randn(2, 4, 3, 5, dtype=torch.float64, generator=gen)

    def run(scan):
        y, s = scan(*inputs[:4], inputs[4] if init is not None else None)
        return (y, s), torch.autograd.grad((y * w_y).sum() + (s * w_s).sum(), inputs)

    (y, s), grads = run(lambda x, a, B, C, s0: ssd_chunked(x, a, B, C, chunk_size=16, initial_state=s0))
    assert calls == [2]  # the two slow heads, factored; the fast two went per head
    (y_ref, s_ref), grads_ref = run(lambda x, a, B, C, s0: ssd_sequential(x, a, B, C, initial_state=s0))
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(s, s_ref, rtol=1e-9, atol=1e-9)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_cpu_computes_long_chunks_as_short_ones_with_the_same_result(monkeypatch):
    """Eager on CPU a chunk of 256 is computed as chunks of 128 (factored form) or 64 (per-head form):
    outputs and gradients equal the recurrence's either way; traced graphs keep the model's chunk."""
    x, a, B, C = _inputs(2, 300, 4, 3, 1, 5, seed=11)
    size = ssd_module.compute_chunk_size
    assert (size(256, x), size(256, x, "per_head"), size(128, x, "per_head"), size(32, x)) == (128, 64, 64, 32)
    assert (size(200, x), size(100, x, "per_head")) == (100, 50)  # divisors of the model's chunk
    gen = torch.Generator().manual_seed(12)
    w_y = torch.randn(x.shape, dtype=torch.float64, generator=gen)

    def run(scan):
        inputs = [t.clone().requires_grad_() for t in (x, a, B, C)]
        y, s = scan(*inputs)
        return (y, s), torch.autograd.grad((y * w_y).sum() + s.sum(), inputs)

    reference = run(ssd_sequential)
    results = [run(lambda *t: ssd_chunked(*t, chunk_size=256))]
    monkeypatch.setattr(ssd_module, "FACTORED_EXPONENT_LIMIT", -1.0)  # every head per head
    results.append(run(lambda *t: ssd_chunked(*t, chunk_size=256)))
    monkeypatch.setattr(ssd_module, "CPU_CHUNK_SIZES", {"factored": 10**6, "per_head": 10**6})
    assert size(256, x) == 256 and size(256, x, "per_head") == 256
    results.append(run(lambda *t: ssd_chunked(*t, chunk_size=256)))
    for got in results:
        for g, want in zip([*got[0], *got[1]], [*reference[0], *reference[1]]):
            torch.testing.assert_close(g, want, rtol=1e-9, atol=1e-9)
    monkeypatch.setattr(ssd_module, "CPU_CHUNK_SIZES", {"factored": 128, "per_head": 64})
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert size(256, x) == 256 and size(256, x, "per_head") == 256


def test_ssd_benchmark_compares_like_with_like():
    """bench/ssd_vs_minimal.py's two formulations agree before it times them, and it reports the chunk each ran at."""
    from bench.ssd_vs_minimal import compare

    r = compare(length=256, h=2, p=4, n=4, g=2, q=128, repeats=2)
    assert r["max_rel_diff"] < 1e-5
    assert (r["ours_chunk"], r["reference_chunk"]) == (64, 128)  # per-head B/C (g = h): its form's chunk
    assert r["paired_speedup"]["pairs"] == 2 and r["ours_best"] > 0 and r["ref_best"] > 0


def test_ssd_benchmark_times_an_earlier_commits_scan_in_the_same_rounds():
    """`--against`: the scan as committed at HEAD runs beside the working tree's, every round."""
    from bench.ssd_vs_minimal import compare

    r = compare(length=128, h=2, p=4, n=4, g=1, q=64, repeats=3, against="HEAD")
    assert r["against"] == "HEAD" and r["earlier_best"] > 0
    assert r["speedup_over_earlier"]["pairs"] == 3


def test_ssd_benchmark_compiled_times_compilation_apart_and_traces_at_the_given_chunk(monkeypatch):
    """`--compile`: every path is compiled (and timed) before the rounds, and the traced scan keeps the chunk it
    is given, as it does inside a compiled model. Dynamo's eager backend keeps the test quick; Inductor is what
    the script uses."""
    import functools

    from bench.ssd_vs_minimal import compare

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    r = compare(length=512, h=2, p=4, n=4, g=1, q=256, repeats=2, compiled=True)
    assert r["compiled"] and set(r["compile_s"]) == {"ours", "reference"}
    assert all(s > 0 for s in r["compile_s"].values())
    assert r["ours_chunk"] == 256 and r["max_rel_diff"] < 1e-5
    eager = compare(length=512, h=2, p=4, n=4, g=1, q=256, repeats=2)
    assert not eager["compiled"] and eager["compile_s"] == {} and eager["ours_chunk"] == 128  # eager CPU: at most 128
