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
