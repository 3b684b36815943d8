"""bench/kernel_check: skips with a clear reason where CUDA or mamba_ssm is absent, and its measure
(every variant against the float64 pure path) passes the pure path and catches a wrong layer, on the CPU."""

import pytest
import torch

from bench.kernel_check import LAYER, main, measure_layer, pure_within_kernel, run_checks, skip_reason
from dnahnet.nn.mamba2 import Mamba2


def test_kernel_check_skips_cleanly_without_cuda_or_mamba_ssm(capsys):
    if torch.cuda.is_available() and skip_reason() is None:
        pytest.skip("CUDA and mamba_ssm present: the real check runs in bench/gpu.sh")
    res = run_checks()
    assert res["skipped"] and res["ok"] and res["checks"] == []
    assert main([]) == 0
    assert "SKIPPED" in capsys.readouterr().out


class _OffByOne(Mamba2):
    """A layer that reads its input one position late: causal, same parameters, wrong function."""

    def forward(self, u, cache=None, mask=None):
        return super().forward(torch.cat([torch.zeros_like(u[:, :1]), u[:, :-1]], dim=1))


def test_measure_passes_the_pure_path_and_catches_a_wrong_layer():
    rows = measure_layer({"pure": Mamba2(**LAYER, use_kernels=False), "off by one": _OffByOne(**LAYER)},
                         torch.device("cpu"), length=200)
    by = {(r["check"], r["precision"]): r for r in rows}
    pure32, pure16 = by[("Mamba2 pure", "fp32")], by[("Mamba2 pure", "bf16")]
    assert pure32["ok"] and max(pure32["out"], pure32["du"], pure32["dparams"]) < 1e-5
    assert pure16["ok"] and 1e-4 < pure16["out"] < 5e-2  # bf16 autocast really ran
    assert not pure32["missing_grads"] and pure32["worst_param"] in dict(Mamba2(**LAYER).named_parameters())
    assert not by[("Mamba2 off by one", "fp32")]["ok"] and by[("Mamba2 off by one", "fp32")]["out"] > 0.5


def test_pure_over_kernel_ratio_flags_a_worse_pure_path():
    def row(name, err):
        return {"check": name, "precision": "bf16", "out": err, "du": err, "dparams": err}

    ok = pure_within_kernel([row("Mamba2 dnahnet pure", 0.01), row("Mamba2 mamba_ssm Mamba2", 0.008)])
    bad = pure_within_kernel([row("Mamba2 dnahnet pure", 0.03), row("Mamba2 mamba_ssm Mamba2", 0.008)])
    assert ok["ok"] and ok["ratio"] == pytest.approx(1.25)
    assert not bad["ok"] and bad["ratio"] == pytest.approx(3.75)
    assert pure_within_kernel([row("Mamba2 dnahnet pure", 0.01)]) is None
