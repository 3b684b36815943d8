"""Attention FLOPs under the two conventions a comparison reports: full L x L block and causal half."""

import pytest

from dnahnet.config import ModelConfig, load_preset
from dnahnet.nn.flops import attention_flops, count_flops
from dnahnet_cli.main import main


def _cfg(name):
    return ModelConfig.from_dict(load_preset(name)["model"])


def test_causal_counts_half_the_global_score_block_and_nothing_else():
    d, L = 128, 1024
    full, causal = attention_flops(d, L, -1), attention_flops(d, L, -1, "causal")
    assert full - causal == pytest.approx(4 * L * d * (L - (L + 1) / 2))
    assert attention_flops(d, L, 63, "causal") == attention_flops(d, L, 63)  # a window is not halved


def test_conventions_differ_for_attention_models_only():
    t, m = _cfg("cpu-transformer"), _cfg("cpu-mamba2")
    assert count_flops(t, 1024, attention="causal").per_base() < 0.75 * count_flops(t, 1024).per_base()
    assert count_flops(m, 1024, attention="causal").per_base() == count_flops(m, 1024).per_base()
    with pytest.raises(ValueError, match="attention convention"):
        count_flops(t, 1024, attention="half")


def test_flops_command_takes_the_convention(capsys):
    assert main(["flops", "cpu-transformer", "--attention", "causal"]) == 0
    causal = capsys.readouterr().out
    assert main(["flops", "cpu-transformer"]) == 0
    full = capsys.readouterr().out
    value = lambda text: int(next(x for x in text.splitlines() if x.startswith("training")).split()[1].replace(",", ""))
    assert value(causal) < value(full)
    assert main(["flops", "cpu-transformer", "--attention", "half"]) == 2
