"""dnahnet.nn.mamba_ssm_triton: mamba_ssm's Triton modules load where its package __init__ fails only for a
missing CUDA extension, and a package broken in any other way stays unavailable."""

import sys

import pytest

from dnahnet.nn import mamba_ssm_triton


@pytest.fixture
def fake_mamba_ssm(tmp_path, monkeypatch):
    """A stand-in `mamba_ssm` on sys.path whose __init__ imports the given module; returns a writer for it."""
    pkg = tmp_path / "mamba_ssm"
    (pkg / "ops" / "triton").mkdir(parents=True)
    (pkg / "ops" / "__init__.py").write_text("")
    (pkg / "ops" / "triton" / "__init__.py").write_text("")
    (pkg / "ops" / "triton" / "ssd_combined.py").write_text("def mamba_chunk_scan_combined():\n    return 'scan'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = {k: v for k, v in sys.modules.items() if k == "mamba_ssm" or k.startswith("mamba_ssm.")}
    for key in saved:
        del sys.modules[key]

    def with_init_importing(module: str) -> None:
        (pkg / "__init__.py").write_text(f"import {module}\n")

    yield with_init_importing
    for key in [k for k in sys.modules if k == "mamba_ssm" or k.startswith("mamba_ssm.")]:
        del sys.modules[key]
    sys.modules.update(saved)


def test_loads_the_triton_module_when_only_the_cuda_extension_is_missing(fake_mamba_ssm):
    fake_mamba_ssm("selective_scan_cuda")
    module = mamba_ssm_triton.load("ops.triton.ssd_combined")
    assert module is not None and module.mamba_chunk_scan_combined() == "scan"
    assert mamba_ssm_triton.import_route == mamba_ssm_triton.WITHOUT_INIT
    assert mamba_ssm_triton.load("ops.triton.ssd_combined") is module  # a second load finds it
    assert mamba_ssm_triton.import_route == mamba_ssm_triton.WITHOUT_INIT


def test_a_package_missing_something_else_stays_unavailable(fake_mamba_ssm):
    fake_mamba_ssm("a_module_nobody_has")
    assert mamba_ssm_triton.load("ops.triton.ssd_combined") is None
    assert "a_module_nobody_has" in mamba_ssm_triton.import_route


def test_an_intact_package_imports_as_itself(fake_mamba_ssm):
    fake_mamba_ssm("os")
    assert mamba_ssm_triton.load("ops.triton.ssd_combined").mamba_chunk_scan_combined() == "scan"
    assert mamba_ssm_triton.import_route == "package"
