"""Long inputs stream through Mamba-2 stacks segment by segment without autograd, exactly."""

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
