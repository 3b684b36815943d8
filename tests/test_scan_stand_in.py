"""dnahnet.perf.scan_stand_in: the elementwise stand-in for the SSD scan that bounds what a faster scan could reach."""

import pytest
import torch

from dnahnet.config import model_config_from_preset
from dnahnet.nn.hnet import HNetLM
from dnahnet.nn.mamba2 import Mamba2
from dnahnet.nn.ssd import ssd_chunked
from dnahnet.perf.scan_stand_in import elementwise_scan, replace_scans


@pytest.mark.parametrize("groups", [1, 4])
def test_the_stand_in_has_the_scans_shapes_and_passes_gradient_to_every_input(groups):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 24, 4, 8, generator=gen, requires_grad=True)
    log_decay = (-torch.rand(2, 24, 4, generator=gen)).requires_grad_()
    B = torch.randn(2, 24, groups, 6, generator=gen, requires_grad=True)
    C = torch.randn(2, 24, groups, 6, generator=gen, requires_grad=True)
    y, final = elementwise_scan(x, log_decay, B, C, 8)
    y_ref, final_ref = ssd_chunked(x, log_decay, B, C, 8)
    assert y.shape == y_ref.shape and final.shape == final_ref.shape
    assert not torch.allclose(y, y_ref)  # a stand-in, not the scan
    y.sum().backward()
    for t in (x, log_decay, B, C):
        assert t.grad is not None and t.grad.abs().sum() > 0


def test_replace_scans_reaches_every_mamba2_layer_and_changes_what_the_model_computes():
    torch.manual_seed(0)
    model = HNetLM(model_config_from_preset("tiny"))
    layers = [m for m in model.modules() if isinstance(m, Mamba2)]
    assert layers and all(m.scan is None for m in layers)  # None: the module's ssd_chunked
    ids = torch.randint(0, 4, (1, 64)) + 65
    before = model(ids).logits.detach()
    assert replace_scans(model) == len(layers)
    assert all(m.scan is elementwise_scan for m in layers)
    assert not torch.allclose(model(ids).logits, before)


def test_a_layer_with_the_stand_in_traces_whole_and_matches_eager():
    torch.manual_seed(0)
    layer = Mamba2(16, d_state=8, headdim=8, chunk_size=8)
    layer.scan = elementwise_scan
    u = torch.randn(2, 24, 16)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(u), layer(u))
