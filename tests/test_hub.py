"""Hub ids resolve through a local Hugging Face cache (offline: nothing downloads); export writes a publishable folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import dnahnet
from dnahnet.errors import DnahnetInputError
from dnahnet.hub import export_hub_folder, parse_hub_id
from dnahnet_cli.main import main
from infer_fixtures import checkpoints  # noqa: F401

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_snapshot(cache: Path, repo: str, folder: Path, commit: str = COMMIT, ref: str = "main") -> Path:
    """Lay `folder` out as huggingface_hub does: models--org--name/{refs/REF, snapshots/COMMIT/...}."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in folder.iterdir():
        shutil.copyfile(f, snap / f.name)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / ref).write_text(commit)
    return snap


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_hub_ids_are_told_from_paths():
    assert parse_hub_id("org/name") == ("org/name", None)
    assert parse_hub_id("org/name@v1.0") == ("org/name", "v1.0")
    assert parse_hub_id("/abs/path") is None and parse_hub_id("a/b/c") is None and parse_hub_id("name") is None


def test_loader_finds_a_model_in_an_offline_cache(checkpoints, offline_cache, tmp_path, capsys):
    hub_dir = export_hub_folder(checkpoints["tiny"], tmp_path / "export", repo_id="acme/dna-tiny")
    card = (hub_dir / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: dnahnet") and "acme/dna-tiny" in card and "held-out bits/base" in card
    cache_snapshot(offline_cache, "acme/dna-tiny", hub_dir)
    seq = "ACGTTGCAAGGCTTAACG" * 4
    local = dnahnet.load(checkpoints["tiny"], device="cpu").score([seq])[0]
    for spec in ("acme/dna-tiny", f"acme/dna-tiny@{COMMIT}"):
        model = dnahnet.load(spec, device="cpu")
        assert model.name == spec
        np.testing.assert_array_equal(model.score([seq])[0], local)
    out = tmp_path / "e.npz"
    fasta = tmp_path / "s.fa"
    fasta.write_text(f">s\n{seq}\n")
    assert main(["embed", "--checkpoint", "acme/dna-tiny", "--fasta", str(fasta), "--out", str(out)]) == 0
    assert np.load(out)["embeddings"].shape == (1, 32)


def test_uncached_hub_id_offline_is_one_line_exit_2(offline_cache, tmp_path, capsys):
    with pytest.raises(DnahnetInputError, match="not in the Hub cache .*offline mode"):
        dnahnet.load("acme/missing", device="cpu")
    out = tmp_path / "e.npz"
    fasta = tmp_path / "s.fa"
    fasta.write_text(">s\nACGT\n")
    assert main(["embed", "--checkpoint", "acme/missing", "--fasta", str(fasta), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "acme/missing" in err and not out.exists()


def test_export_refuses_a_used_folder_and_keeps_it(checkpoints, tmp_path, capsys):
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("x")
    assert main(["export", "--checkpoint", str(checkpoints["tiny"]), "--hub-folder", str(used)]) == 2
    assert "not empty" in capsys.readouterr().err and sorted(p.name for p in used.iterdir()) == ["keep.txt"]
    fresh = tmp_path / "fresh"
    assert main(["export", "--checkpoint", str(checkpoints["tiny"]), "--hub-folder", str(fresh)]) == 0
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in fresh.iterdir()}
    assert dnahnet.load(fresh, device="cpu").config == dnahnet.load(checkpoints["tiny"], device="cpu").config
