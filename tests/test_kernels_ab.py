"""bench/kernels_ab: another commit's Mamba-2 and attention kernels timed against the working tree's in one process."""

import inspect
import json
import os

import pytest
from git_clone import needs_a_clone

from bench.kernels_ab import SWAPPED, _dropping_newer_options, kernels_at, main

pytestmark = needs_a_clone


def test_old_kernels_come_from_the_commit_and_the_current_ones_are_restored(tmp_path, monkeypatch):
    """Both versions run in PyTorch (the fused CPU kernels would bypass the swapped functions), without changing
    the environment of the process that runs the script."""
    from dnahnet.nn import cpu_kernel

    kernel_calls = []
    real_scan = cpu_kernel.scan
    monkeypatch.setattr(cpu_kernel, "scan", lambda *a, **k: kernel_calls.append(1) or real_scan(*a, **k))
    monkeypatch.delenv(cpu_kernel.ENV, raising=False)
    old = kernels_at("HEAD")
    assert {name for _, name, _ in SWAPPED} == {"ssd_chunked", "causal_depthwise_conv", "rotary_cos_sin"}
    for module, name, _ in SWAPPED:
        if name == "rotary_cos_sin":
            continue  # attention.py imports it from rotary_table.py: HEAD and the tree share the function
        assert old[name] is not getattr(module, name)
        assert inspect.unwrap(old[name]).__code__.co_filename.startswith("HEAD:dnahnet/nn/")

    def current_kernels():
        return {name: getattr(module, name) for module, name, _ in SWAPPED}

    current = current_kernels()
    out = tmp_path / "ab"
    assert main(["--against", "HEAD", "--configs", "tiny", "--repeats", "2", "--out", str(out)]) == 0
    assert current_kernels() == current
    assert kernel_calls == [] and cpu_kernel.ENV not in os.environ
    results = json.loads((out / "results.json").read_text())
    assert set(results["rows"]) == {"Mamba-2 block (tiny width)", "tiny"}
    for row in results["rows"].values():
        assert len(row["old_seconds"]) == len(row["new_seconds"]) == 2 and row["pairs"] == 2
        assert row["ratio_median"] > 0
    text = (out / "report.md").read_text()
    assert "python bench/kernels_ab.py --against HEAD --configs tiny" in text and "at HEAD" in text


def test_compiled_blocks_keep_a_graph_for_each_version_of_the_kernels(tmp_path):
    """With --compile every block runs compiled, and swapping the kernels recompiles instead of reusing
    the other version's graph: the old version's code is traced too."""
    import torch._dynamo.utils

    torch._dynamo.reset()
    before = torch._dynamo.utils.counters["frames"]["ok"]
    out = tmp_path / "ab"
    assert main(["--against", "HEAD", "--configs", "tiny", "--repeats", "1", "--compile", "--compile-backend",
                 "aot_eager", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["compile_backend"] == "aot_eager"
    # the lone block and tiny's Mamba-2 blocks once per version, its attention blocks once (HEAD's
    # `rotary_cos_sin` is the tree's, imported from rotary_table.py): 5 graphs (3 if swapping the kernels
    # reused the graph compiled with the other version)
    assert torch._dynamo.utils.counters["frames"]["ok"] - before >= 5
    assert "compiled (aot_eager" in (out / "report.md").read_text()


def test_an_older_kernel_is_called_without_the_options_it_predates():
    """The working tree's Mamba-2 passes `length_is_data_dependent=` to `ssd_chunked`; a commit from before
    that option still runs, with the option dropped, and keeps every argument it does take."""
    def old_scan(x, log_decay, B, C, chunk_size, initial_state=None):
        return (x, log_decay, B, C, chunk_size, initial_state)

    call = _dropping_newer_options(old_scan)
    assert call(1, 2, 3, 4, 5, initial_state=6, length_is_data_dependent=True) == (1, 2, 3, 4, 5, 6)
    with pytest.raises(TypeError):
        old_scan(1, 2, 3, 4, 5, length_is_data_dependent=True)

    def takes_anything(*args, **options):
        return options

    assert _dropping_newer_options(takes_anything) is takes_anything


def test_an_older_scan_gets_x_scaled_by_the_dt_it_predates():
    """Mamba-2 now hands `ssd_chunked` x unscaled with `dt=`; a scan from before that takes x scaled, so the
    wrapper scales it rather than dropping dt (dropping it would time a different computation)."""
    import torch

    def old_scan(x, log_decay, B, C, chunk_size, initial_state=None):
        return x

    x, dt = torch.randn(2, 5, 3, 4), torch.rand(2, 5, 3)
    got = _dropping_newer_options(old_scan)(x, None, None, None, 8, dt=dt, cpu_kernel=None)
    torch.testing.assert_close(got, x * dt[..., None])


def test_a_layer_calls_the_scan_in_the_module_global_that_the_swap_replaces(monkeypatch):
    """kernels_ab swaps `dnahnet.nn.mamba2.ssd_chunked`; a Mamba-2 layer without a scan of its own
    (`Mamba2.scan` None, as built) must call whatever that global holds at call time."""
    import torch

    import dnahnet.nn.mamba2 as mamba2_module

    calls = []
    real = mamba2_module.ssd_chunked
    monkeypatch.setattr(mamba2_module, "ssd_chunked", lambda *a, **k: calls.append(1) or real(*a, **k))
    layer = mamba2_module.Mamba2(16, d_state=8, headdim=8, chunk_size=8)
    layer(torch.randn(1, 16, 16))
    assert calls == [1]
