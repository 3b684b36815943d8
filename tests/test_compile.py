"""--compile: per-block torch.compile gives eager's logits and gradients to float tolerance."""

from __future__ import annotations

import copy

import pytest
import torch

from dnahnet.config import model_config_from_preset
from dnahnet.nn.compile import compile_layers, compile_seconds
from dnahnet.nn.hnet import HNetLM


@pytest.mark.slow
def test_compiled_blocks_equal_eager_forward_and_backward():
    torch.manual_seed(0)
    eager = HNetLM(model_config_from_preset("tiny"))
    compiled = copy.deepcopy(eager)
    assert compile_layers(compiled) == 3  # encoder m1, main T1, decoder m1
    g = torch.Generator().manual_seed(1)
    ids = torch.tensor(list(b"ACGT"))[torch.randint(4, (2, 192), generator=g)]
    before = compile_seconds()
    outs = []
    for net in (eager, compiled):
        out = net(ids)
        loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 256), ids[:, 1:].reshape(-1))
        loss.backward()
        outs.append((out, {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}))
    (a, ga), (b, gb) = outs
    assert compile_seconds() > before  # it really compiled
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-4, atol=1e-4)
    assert torch.equal(a.routing[0].boundary_mask, b.routing[0].boundary_mask)
    assert ga.keys() == gb.keys() and len(ga) > 10
    for k in ga:
        torch.testing.assert_close(gb[k], ga[k], rtol=1e-3, atol=1e-5, msg=k)
