"""Long inputs stream through Mamba-2 and windowed-attention stacks segment by segment without autograd, exactly."""

import dataclasses

import pytest
import torch

import dnahnet.nn.isotropic as isotropic
from dnahnet.config import model_config_from_preset
from dnahnet.nn.attention import CausalMHA, WindowCache
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


def test_full_attention_stacks_and_training_do_not_stream(short_segments):
    mixed = _stack("tiny-transformer", 0, "T1")
    x = torch.randn(1, 60, mixed.d_model, dtype=torch.float64)
    with torch.no_grad():
        assert not mixed._streams(x)
    assert not _stack("tiny", 0, "m2")._streams(torch.randn(1, 60, 32, dtype=torch.float64))  # grad enabled


def _windowed(preset: str, window: int, **overrides):
    attn = model_config_from_preset(preset).attn_cfg
    sizes = attn["window_size"]
    return {**overrides, "attn_cfg": {**attn, "window_size": [window] * len(sizes) if isinstance(sizes, list) else window}}


def test_windowed_attention_continues_across_segments_with_its_last_keys():
    """Segments of 13, 0, 17 and 20 positions with a WindowCache give the one-pass outputs; the cache
    holds the last `window` keys, whatever the input's length."""
    torch.manual_seed(0)
    layer = CausalMHA(32, num_heads=2, rotary_emb_dim=8, window_size=5).double()
    x = torch.randn(2, 50, 32, dtype=torch.float64)
    with torch.no_grad():
        whole = layer(x)
        cache = layer.allocate_inference_cache(2, 0)
        assert isinstance(cache, WindowCache)
        parts, start = [], 0
        for n in (13, 0, 17, 20):
            parts.append(layer(x[:, start : start + n], cache))
            start += n
            assert cache.k.shape[1] == min(5, start) and cache.seen == start
    torch.testing.assert_close(torch.cat(parts, 1), whole, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="unpadded rows"):
        layer(x[:, :4], cache, mask=torch.tensor([[True] * 4, [True, True, False, False]]))
    with pytest.raises(ValueError, match="max_seqlen > 0"):
        layer.step(x[:, :1], cache)


def test_a_windowed_attention_stack_streams_unpadded_rows_exactly(short_segments):
    torch.manual_seed(0)
    config = dataclasses.replace(model_config_from_preset("tiny-transformer"), **_windowed("tiny-transformer", 7))
    stack = Isotropic(config, 0, "T1m1").double()
    x = torch.randn(2, 101, stack.d_model, dtype=torch.float64)
    whole = stack(x)  # autograd on: one pass
    with torch.no_grad():
        assert stack._streams(x)
        assert not stack._streams(x, mask=torch.ones(2, 101, dtype=torch.bool))  # rows may be ragged
        assert not stack._streams(x, cache=stack.allocate_inference_cache(2, 101))  # a caller's prefill
        streamed = stack(x)
    torch.testing.assert_close(streamed, whole.detach(), rtol=1e-10, atol=1e-10)


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
    ("tiny", _windowed("tiny", 4)),  # windowed attention in the main network
    ("tiny-2stage", _windowed("tiny-2stage", 3)),
], ids=["1stage", "2stage", "2stage-fixed5", "2stage-fixed30", "isotropic", "1stage-windowed", "2stage-windowed"])
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


def test_only_single_unpadded_rows_of_streamable_models_stream_whole(short_segments):
    net = _model("bench-hnet-1stage-mamba2-m1")
    ids = torch.randint(0, 4, (1, 100))
    with torch.no_grad():
        assert net._streams(ids, None, None)
        assert not net._streams(ids[:, :24], None, None)  # one segment
        assert not net._streams(ids.expand(2, -1), None, None)
        assert not net._streams(ids, torch.ones_like(ids, dtype=torch.bool), None)
        assert not net._streams(ids, None, net.allocate_inference_cache(1, 0))
        assert not _model("tiny")._streams(ids, None, None)  # full attention in the main network
        assert _model("tiny", **_windowed("tiny", 4))._streams(ids, None, None)
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


def test_segments_follow_the_inputs_device():
    """CUDA streams in longer segments than the CPU (a short batch-1 pass there is launch-bound)."""
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    between = isotropic.STREAM_SEGMENT_POSITIONS + 1
    assert isotropic.GPU_STREAM_SEGMENT_POSITIONS > between
    with torch.no_grad():
        assert isotropic.long_enough_to_stream(between, cpu)
        assert not isotropic.long_enough_to_stream(between, gpu)
        assert isotropic.long_enough_to_stream(isotropic.GPU_STREAM_SEGMENT_POSITIONS + 1, gpu)
    assert isotropic.stream_segment_positions(gpu) == isotropic.GPU_STREAM_SEGMENT_POSITIONS
