"""--compile: the whole backbone traces as one graph and gives eager's logits and gradients.

The suite traces with the aot_eager backend (Dynamo + AOTAutograd, seconds): it proves the
forward and backward trace whole (fullgraph, no breaks) and equal eager. Inductor itself
(C++ code generation) takes about 3 minutes cold on 2 shared cores (25 s with its cache warm),
so that variant runs only with DNAHNET_TEST_INDUCTOR=1.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from dnahnet.config import model_config_from_preset
from dnahnet.nn.compile import compile_layers, compile_seconds, enable_unbacked_chunk_counts
from dnahnet.nn.hnet import HNetLM

INDUCTOR = pytest.param("inductor", marks=pytest.mark.skipif(
    not os.environ.get("DNAHNET_TEST_INDUCTOR"), reason="about 3 minutes cold; set DNAHNET_TEST_INDUCTOR=1"))


def _ids(batch: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.tensor(list(b"ACGT"))[torch.randint(4, (batch, length), generator=g)]


def _loss(out, ids) -> torch.Tensor:
    lm = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 256), ids[:, 1:].reshape(-1))
    return lm + out.ratio_loss


@pytest.mark.parametrize("preset,length", [
    ("tiny", 192), ("tiny-2stage", 256), ("cpu-hnet-mamba2", 256), ("cpu-every-k", 256), ("tiny-transformer", 128),
    ("bench-hnet-1stage-swa", 2048),  # ~680 chunks: past the 512-chunk attention window
])
def test_every_model_traces_as_one_graph(preset, length):
    """No host sync breaks the forward: Dynamo captures each model whole (chunk counts unbacked)."""
    enable_unbacked_chunk_counts()
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = HNetLM(model_config_from_preset(preset))
    explanation = torch._dynamo.explain(model)(_ids(2, length, 1))
    assert [r.reason for r in explanation.break_reasons] == []
    assert explanation.graph_count == 1


def _compare(eager: HNetLM, compiled: HNetLM, ids: torch.Tensor) -> None:
    outs = []
    for net in (eager, compiled):
        net.zero_grad()
        out = net(ids)
        _loss(out, ids).backward()
        outs.append((out, {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}))
    (a, ga), (b, gb) = outs
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-4, atol=1e-4)
    for ra, rb in zip(a.routing, b.routing):
        assert torch.equal(ra.boundary_mask, rb.boundary_mask)
    assert ga.keys() == gb.keys() and len(ga) > 10
    for k in ga:
        torch.testing.assert_close(gb[k], ga[k], rtol=1e-3, atol=1e-5, msg=k)


@pytest.mark.slow
def test_compiled_backbone_equals_eager_and_does_not_recompile_for_chunk_counts():
    """Forward and backward of the whole graph through AOTAutograd (Inductor's code generation: the
    DNAHNET_TEST_INDUCTOR variant below)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = HNetLM(model_config_from_preset("tiny-2stage"))
    compiled = copy.deepcopy(eager)
    assert compile_layers(compiled, backend="aot_eager", fullgraph=True, scope="model") == 1
    before = compile_seconds()
    _compare(eager, compiled, _ids(2, 192, 1))
    assert compile_seconds() > before  # it really compiled
    graphs = counters["stats"]["unique_graphs"]
    # Same length, other bases: other chunk counts at both stages, and no new graph.
    counts = []
    for seed in (2, 3):
        ids = _ids(2, 192, seed)
        counts.append([int(r.boundary_mask.sum(-1).max()) for r in eager(ids).routing])
        _compare(eager, compiled, ids)
    assert counts[0] != counts[1]
    assert counters["stats"]["unique_graphs"] == graphs


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["aot_eager", INDUCTOR])
def test_compiled_blocks_equal_eager_forward_and_backward(backend):
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = HNetLM(model_config_from_preset("tiny"))
    compiled = copy.deepcopy(eager)
    assert compile_layers(compiled, backend=backend, fullgraph=True, scope="blocks") == 3  # encoder m1, main T1, decoder m1
    _compare(eager, compiled, _ids(2, 192, 1))


@pytest.mark.skipif(not os.environ.get("DNAHNET_TEST_INDUCTOR"), reason="about 6 minutes cold; set DNAHNET_TEST_INDUCTOR=1")
def test_inductor_whole_backbone_training_equals_eager_for_every_chunk_count():
    """Inductor's forward and backward of the whole graph: logits and every gradient equal eager's, and
    other chunk counts reuse the graph (views are recomputed in backward, see enable_unbacked_chunk_counts)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = HNetLM(model_config_from_preset("tiny-2stage"))
    compiled = copy.deepcopy(eager)
    compile_layers(compiled, backend="inductor", fullgraph=True, scope="model")
    _compare(eager, compiled, _ids(2, 192, 1))
    graphs = counters["stats"]["unique_graphs"]
    for seed in (2, 3):
        _compare(eager, compiled, _ids(2, 192, seed))
    assert counters["stats"]["unique_graphs"] == graphs


@pytest.mark.skipif(not os.environ.get("DNAHNET_TEST_INDUCTOR"), reason="about 6 minutes cold; set DNAHNET_TEST_INDUCTOR=1")
def test_inductor_whole_backbone_inference_equals_eager():
    """What `score --compile` / `boundaries --compile` run: Inductor, forward only, one graph."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = HNetLM(model_config_from_preset("tiny-2stage")).eval()
    compiled = copy.deepcopy(eager)
    compile_layers(compiled, backend="inductor", fullgraph=True, scope="model")
    graphs = counters["stats"]["unique_graphs"]  # a process-wide count
    with torch.no_grad():
        for seed in (1, 2, 3):
            ids = _ids(2, 192, seed)
            a, b = eager(ids), compiled(ids)
            torch.testing.assert_close(b.logits, a.logits, rtol=1e-4, atol=1e-4)
    assert counters["stats"]["unique_graphs"] == graphs + 1  # one graph for every chunk count


def test_load_compiles_the_whole_backbone_and_embed_compiles_blocks(tmp_path):
    """What `--compile` wraps per command (compilation itself is lazy, so nothing compiles here)."""
    import dnahnet
    from dnahnet.io.checkpoint import save_model

    save_model(tmp_path / "ck", HNetLM(model_config_from_preset("tiny")))
    whole = dnahnet.load(tmp_path / "ck", device="cpu", compile=True)
    assert whole.compiled == "the whole backbone"
    assert whole.net.backbone._compiled_call_impl is not None
    assert torch._dynamo.config.capture_scalar_outputs  # chunk counts traced, not a graph break
    blocks = dnahnet.load(tmp_path / "ck", device="cpu", compile="blocks")
    assert blocks.compiled == "3 blocks" and blocks.net.backbone._compiled_call_impl is None
    assert dnahnet.load(tmp_path / "ck", device="cpu").compiled == ""


def test_padded_batches_trace_as_one_graph():
    """Scoring pads the last batch of windows: the masked forward has no break either."""
    enable_unbacked_chunk_counts()
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = HNetLM(model_config_from_preset("tiny-2stage")).eval()
    mask = torch.ones(2, 256, dtype=torch.bool)
    mask[1, 200:] = False
    with torch.no_grad():
        explanation = torch._dynamo.explain(model)(_ids(2, 256, 1), mask)
    assert [r.reason for r in explanation.break_reasons] == [] and explanation.graph_count == 1


def test_an_eager_forward_does_not_import_sympy():
    """torch._check's first call imports sympy (~0.5-1 s on the first pass of every CLI run); only traces need it."""
    import subprocess
    import sys

    code = ("import sys, torch\nfrom dnahnet.config import model_config_from_preset\nfrom dnahnet.nn.hnet import HNetLM\n"
            "net = HNetLM(model_config_from_preset('tiny-2stage')).eval()\n"
            "with torch.no_grad():\n    net(torch.randint(0, 4, (2, 64)))\nprint('sympy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_blocks_of_many_models_in_one_process_all_stay_compiled():
    """Every block shares `Block.forward`'s code object, so Dynamo's per-code limit (8 graphs) was reached by a
    process compiling several models (benchmarks pairing seven compiled configs) and later blocks ran eager,
    silently. `compile_layers` raises the limit: ten block shapes here all get graphs, none falls back."""
    from dnahnet.nn.compile import BLOCK_RECOMPILE_LIMIT

    with torch._dynamo.config.patch(recompile_limit=8):  # Dynamo's default, whatever earlier tests set
        torch._dynamo.reset()
        graphs_before = counters["stats"]["unique_graphs"]
        torch.manual_seed(0)
        for width in range(16, 176, 16):  # ten isotropic Transformer models of different widths, one block each
            config = model_config_from_preset("tiny-transformer")
            config.d_model, config.d_intermediate = [width], [2 * width]
            config.arch_layout = ["T1"]
            model = HNetLM(config)
            compile_layers(model, backend="eager", scope="blocks")
            model(_ids(1, 32, 0))
        assert torch._dynamo.config.recompile_limit >= BLOCK_RECOMPILE_LIMIT
        assert counters["stats"]["unique_graphs"] - graphs_before >= 10, dict(counters["stats"])
