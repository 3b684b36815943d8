"""Long inputs stream through Mamba-2 stacks segment by segment without autograd, exactly."""

import dataclasses

import pytest
import torch

import dnahnet.nn.isotropic as isotropic
from dnahnet.config import model_config_from_preset
from dnahnet.nn.hnet import HNetLM
from dnahnet.nn.isotropic import Isotropic


def _stack(preset: str, stage: int, layout: str) -> Isotropic:
    torch.manual_seed(0)
    return Isotropic(model_config_from_preset(preset), stage, layout).double()


@pytest.fixture
def short_segments(monkeypatch):
    monkeypatch.setattr(isotropic, "STREAM_SEGMENT_POSITIONS", 24)


def test_streamed_stack_equals_one_pass(short_segments):
    stack = _stack("tiny", 0, "m2")
    x = torch.randn(2, 101, stack.d_model, dtype=torch.float64)
    whole = stack(x)  # autograd on: one pass
    with torch.no_grad():
        assert stack._streams(x)
        streamed = stack(x)
    torch.testing.assert_close(streamed, whole.detach(), rtol=1e-10, atol=1e-10)


def test_streamed_stack_with_ragged_rows_equals_each_row_alone(short_segments):
    stack = _stack("tiny", 0, "m2")
    x = torch.randn(2, 60, stack.d_model, dtype=torch.float64)
    mask = torch.ones(2, 60, dtype=torch.bool)
    mask[1, 31:] = False
    with torch.no_grad():
        streamed = stack(x, mask=mask)
        alone = stack(x[1:, :31])
    torch.testing.assert_close(streamed[1:, :31], alone, rtol=1e-10, atol=1e-10)


def test_attention_stacks_and_training_do_not_stream(short_segments):
    mixed = _stack("tiny-transformer", 0, "T1")
    x = torch.randn(1, 60, mixed.d_model, dtype=torch.float64)
    with torch.no_grad():
        assert not mixed._streams(x)
    assert not _stack("tiny", 0, "m2")._streams(torch.randn(1, 60, 32, dtype=torch.float64))  # grad enabled


@pytest.mark.parametrize("preset", ["tiny", "bench-hnet-1stage-mamba2-m1"])
def test_streamed_hnet_scores_equal_one_pass(short_segments, preset):
    torch.manual_seed(0)
    net = HNetLM(model_config_from_preset(preset)).double().eval()
    ids = torch.randint(0, 4, (2, 300))
    whole = net(ids).logits.detach()
    with torch.inference_mode():
        streamed = net(ids).logits
    torch.testing.assert_close(streamed, whole, rtol=1e-9, atol=1e-9)


def _model(preset: str, **overrides) -> HNetLM:
    torch.manual_seed(0)
    config = dataclasses.replace(model_config_from_preset(preset), **overrides)
    return HNetLM(config).double().eval()


ALL_MAMBA_2STAGE = dict(arch_layout=["m1", ["m1", ["m2"], "m1"], "m1"])


@pytest.mark.parametrize("preset, overrides", [
    ("bench-hnet-1stage-mamba2-m1", {}),
    ("tiny-2stage", ALL_MAMBA_2STAGE),
    ("tiny-2stage", {**ALL_MAMBA_2STAGE, "chunking": "every_k", "k": 5}),  # stage 1 then has segments with no boundary
    ("tiny-2stage", {**ALL_MAMBA_2STAGE, "chunking": "every_k", "k": 30}),  # stage 0 too: segments of 24 that emit no chunk
    ("bench-mamba2", {}),
], ids=["1stage", "2stage", "2stage-fixed5", "2stage-fixed30", "isotropic"])
def test_a_streamed_row_gives_one_pass_logits_and_routing_at_every_stage(short_segments, preset, overrides):
    net = _model(preset, **overrides)
    ids = torch.randint(0, 4, (1, 301))
    whole = net(ids)  # autograd on: one pass
    with torch.inference_mode():
        assert net._streams(ids, None, None)
        streamed = net(ids)
    torch.testing.assert_close(streamed.logits, whole.logits.detach(), rtol=1e-9, atol=1e-9)
    assert len(streamed.routing) == len(whole.routing) == net.n_routed
    for one, many in zip(whole.routing, streamed.routing):
        valid = slice(None) if one.mask is None else one.mask[0]
        assert torch.equal(many.boundary_mask[0], one.boundary_mask[0, valid])
        torch.testing.assert_close(many.boundary_prob[0], one.boundary_prob[0, valid].detach(), rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(many.selected_probs[0], one.selected_probs[0, valid].detach(), rtol=1e-9, atol=1e-12)
    for a, b in zip(streamed.ratio_losses, whole.ratio_losses):
        torch.testing.assert_close(a, b.detach(), rtol=1e-9, atol=1e-12)


def test_only_single_unpadded_rows_of_recurrent_models_stream_whole(short_segments):
    net = _model("bench-hnet-1stage-mamba2-m1")
    ids = torch.randint(0, 4, (1, 100))
    with torch.no_grad():
        assert net._streams(ids, None, None)
        assert not net._streams(ids[:, :24], None, None)  # one segment
        assert not net._streams(ids.expand(2, -1), None, None)
        assert not net._streams(ids, torch.ones_like(ids, dtype=torch.bool), None)
        assert not net._streams(ids, None, net.allocate_inference_cache(1, 0))
        assert not _model("tiny")._streams(ids, None, None)  # attention in the main network
    assert not net._streams(ids, None, None)  # autograd


def test_prefill_in_two_parts_then_steps_equal_one_prefill(short_segments):
    """A used cache is continued: prefill 40 + 33 bases, then 5 steps, as prefill 73 then 5 steps."""
    net = _model("tiny-2stage", **ALL_MAMBA_2STAGE)
    ids = torch.randint(0, 4, (1, 78))
    with torch.no_grad():
        one, two = (net.allocate_inference_cache(1, 0, dtype=torch.float64) for _ in range(2))
        first = net(ids[:, :73], cache=one).logits
        parts = torch.cat([net(ids[:, :40], cache=two).logits, net(ids[:, 40:73], cache=two).logits], dim=1)
        torch.testing.assert_close(parts, first, rtol=1e-9, atol=1e-9)
        for t in range(73, 78):
            torch.testing.assert_close(net.step(ids[:, t : t + 1], two), net.step(ids[:, t : t + 1], one), rtol=1e-9, atol=1e-9)
