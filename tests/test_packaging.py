"""Packaging facts users rely on: the version flag, the licence file and the citation file agree with pyproject."""

from pathlib import Path

import pytest
import yaml

import dnahnet
from dnahnet_cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def test_version_flag_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"dnahnet {dnahnet.__version__}\n"


def test_license_and_citation_match_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["license"] == "Apache-2.0" and cff["version"] == project["version"] == dnahnet.__version__
    assert any(i["value"] == "arXiv:2507.07955" for ref in cff["references"] for i in ref.get("identifiers", []))


def test_installed_packages_live_under_the_dnahnet_namespace():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    top_level = {name.split(".")[0] for name in setuptools["packages"]} | set(setuptools["package-dir"])
    assert sorted(n for n in top_level if not n.startswith("dnahnet")) == []  # no top-level name outside ours
    assert {"dnahnet", "dnahnet_cli", "dnahnet_pipelines"} <= top_level
    assert setuptools["package-dir"]["dnahnet_pipelines"] == "pipelines"  # the folder keeps its name
    for folder in setuptools["package-dir"].values():
        assert (ROOT / folder).is_dir()


def test_pipelines_run_under_their_installed_name_outside_the_repo(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-m", "dnahnet_pipelines.gue", "--help"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: python -m dnahnet_pipelines.gue")
    old = subprocess.run([sys.executable, "-c", "import pipelines"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert old.returncode == 1 and "No module named 'pipelines'" in old.stderr  # the PyPI name stays free


def test_every_package_data_pattern_ships_files_from_a_listed_package():
    """The presets, the fused kernel's C++ source and the manifests reach the wheel: each package-data
    pattern names a listed package (so setuptools neither drops nor warns about it) and matches files."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, patterns in setuptools["package-data"].items():
        assert package in setuptools["packages"]
        top, *rest = package.split(".")
        folder = ROOT / setuptools["package-dir"][top] / Path(*rest)  # Path() is ".": the top folder itself
        for pattern in patterns:
            assert [p for p in folder.glob(pattern) if p.is_file()], f"{package}: {pattern} matches no file"
    shipped = {(package, pattern) for package, patterns in setuptools["package-data"].items() for pattern in patterns}
    assert {("dnahnet.presets", "*.json"), ("dnahnet.nn.csrc", "*.cpp")} <= shipped
