"""The analytic FLOPs counter agrees with PyTorch's FLOP counter on real forward passes."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from dnahnet.config import ModelConfig, model_config_from_preset
from dnahnet.nn.chunking import realised_compression
from dnahnet.nn.flops import count_flops
from dnahnet.nn.hnet import HNetLM


@pytest.fixture(autouse=True)
def pure_pytorch(monkeypatch):
    """FlopCounterMode counts aten operators; the fused CPU kernels (on by default) would hide the scan's FLOPs."""
    monkeypatch.setenv("DNAHNET_CPU_KERNEL", "0")


def _measured(model: HNetLM, seq_len: int):
    ids = torch.randint(0, 256, (1, seq_len), generator=torch.Generator().manual_seed(0))
    # The math SDPA backend runs attention as visible matmuls (CPU flash kernels are not counted).
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        out = model(ids)
    return counter.get_total_flops(), realised_compression(out.routing)


@pytest.mark.parametrize("preset", ["tiny", "tiny-2stage", "cpu-small"])
def test_analytic_forward_flops_within_ten_percent_of_torch_counter(preset):
    torch.manual_seed(0)
    model = HNetLM(model_config_from_preset(preset))
    measured, ratios = _measured(model, 512)
    analytic = count_flops(model.config, 512, compression=ratios).forward
    assert abs(analytic - measured) / measured < 0.10, (analytic, measured)


@pytest.mark.parametrize(
    "layout, d_int",
    [(["T4"], [128]), (["m4"], [0]), (["M2"], [96])],
)
def test_isotropic_models_within_ten_percent(layout, d_int):
    cfg = ModelConfig(arch_layout=layout, d_model=[64], d_intermediate=d_int,
                      ssm_cfg={"d_state": 16, "headdim": 32, "chunk_size": 64},
                      attn_cfg={"num_heads": 4, "rotary_emb_dim": 16, "window_size": -1})
    model = HNetLM(cfg)
    measured, _ = _measured(model, 256)
    analytic = count_flops(cfg, 256).forward
    assert abs(analytic - measured) / measured < 0.10, (analytic, measured)


def test_main_network_cost_scales_with_compression():
    cfg = model_config_from_preset("paper-dna-hnet-transformer")
    at3 = count_flops(cfg, 1024, compression=[3.0]).parts["main"]
    at6 = count_flops(cfg, 1024, compression=[6.0]).parts["main"]
    assert 1.9 < at3 / at6 < 2.2  # linear parts halve; attention's quadratic part falls faster
    assert count_flops(cfg, 1024).training == 3 * count_flops(cfg, 1024).forward


def test_cpu_comparison_presets_are_matched_in_flops_within_five_percent():
    names = ["cpu-transformer", "cpu-mamba2", "cpu-hnet-transformer", "cpu-hnet-mamba2", "cpu-every-k"]
    per_base = {n: count_flops(model_config_from_preset(n), 1024).per_base() for n in names}
    assert max(per_base.values()) / min(per_base.values()) < 1.05, per_base
