"""bench/kernel_arms.py: each diagnostic arm changes what it says and nothing else."""

from __future__ import annotations

import pytest
import torch

from bench import kernel_arms
from dnahnet.config import model_config_from_preset
from dnahnet.nn import ssd
from dnahnet.nn.attention import CausalMHA
from dnahnet.nn.chunking import RoutingModule
from dnahnet.nn.hnet import HNetLM
from dnahnet.nn.isotropic import SwiGLU
from dnahnet.nn.mamba2 import Mamba2
from dnahnet.nn.norm import RMSNorm


def scan_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    b, l, h, p, n = 2, 96, 4, 32, 32
    x = torch.randn(b, l, h, p, generator=g)
    log_decay = -torch.rand(b, l, h, generator=g) * 0.5
    B, C = torch.randn(b, l, 1, n, generator=g), torch.randn(b, l, 1, n, generator=g)
    return x, log_decay, B, C


def pytorch_scan_under_bf16_autocast() -> torch.Tensor:
    x, log_decay, B, C = scan_inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, _ = ssd.ssd_chunked(x, log_decay, B, C, 32, cpu_kernel=False)
    return y


def test_the_fp32_scan_arm_takes_the_pytorch_scan_out_of_autocast(monkeypatch):
    for name in ("_ssd_factored", "_per_head_scan"):  # restored after the test
        monkeypatch.setattr(ssd, name, getattr(ssd, name))
    x, log_decay, B, C = scan_inputs()
    reference, _ = ssd.ssd_chunked(x.double(), log_decay.double(), B.double(), C.double(), 32, cpu_kernel=False)
    in_bf16 = (pytorch_scan_under_bf16_autocast().double() - reference).abs().max().item()
    kernel_arms.scan_out_of_autocast()
    in_fp32 = (pytorch_scan_under_bf16_autocast().double() - reference).abs().max().item()
    assert in_bf16 > 1e-2  # the scan's matmuls ran in bf16
    assert in_fp32 < 1e-4 * reference.abs().max().item()


SWITCHED = (Mamba2, RMSNorm, CausalMHA, SwiGLU, RoutingModule)  # every class with a kernel switch


def switches_after(monkeypatch, arm: str) -> dict[type, bool | None]:
    """Each switch class's setting in a model built after `arm` applied (its class changes undone after the test)."""
    for module in SWITCHED:
        monkeypatch.setattr(module, "__init__", module.__init__)
    kernel_arms.ARMS[arm].apply()
    model = HNetLM(model_config_from_preset("cpu-hnet-transformer"))
    return {type(m): m.cpu_kernel for m in model.modules() if hasattr(m, "cpu_kernel")}


def test_the_mamba2_arm_switches_off_every_kernel_but_the_mamba2_layers(monkeypatch):
    switches = switches_after(monkeypatch, "mamba2-kernels")
    assert switches[Mamba2] is None  # as DNAHNET_CPU_KERNEL says
    assert {switches[t] for t in (RMSNorm, CausalMHA, SwiGLU, RoutingModule)} == {False}
    assert set(switches) == set(SWITCHED)  # no switch left unaccounted


def test_an_unknown_arm_stops_with_the_usage():
    with pytest.raises(SystemExit, match="pure-fp32-scan,mamba2-kernels,routing-pytorch,norms-pytorch,gate-pytorch"):
        kernel_arms.main(["fp64"])


@pytest.mark.parametrize("arm, off", [("routing-pytorch", RoutingModule), ("norms-pytorch", RMSNorm), ("gate-pytorch", SwiGLU)])
def test_an_arm_for_one_part_switches_off_that_part_only(monkeypatch, arm, off):
    assert switches_after(monkeypatch, arm) == {**{t: None for t in SWITCHED}, off: False}
