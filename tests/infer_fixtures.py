"""Fixtures for the inference tests: tiny random checkpoints and real chr22 sequence.

Correctness of scoring, stitching, boundaries and generation does not depend on
training, so the checkpoints are randomly initialised tiny models saved with
`save_model` (seeded: the same weights every run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pysam
import pytest
import torch

from dnahnet.config import ModelConfig, model_config_from_preset
from dnahnet.infer.model import DnaModel, load
from dnahnet.io.checkpoint import save_model
from dnahnet.nn.hnet import HNetLM

# chr22 (hg19) pieces of the shared real data: an N-free stretch, and one with assembly gaps.
CLEAN = ("chr22", 20_070_034, 20_087_609)
GAPPY = ("chr22", 20_000_000, 20_020_000)
SMALL_SIZES = {"chrA": 4000, "chrB": 2000, "chrC": 3000}


def _save(folder: Path, config: ModelConfig, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    save_model(folder, HNetLM(config))
    return folder


def isotropic_config() -> ModelConfig:
    tiny = model_config_from_preset("tiny")
    return ModelConfig(arch_layout=["m2"], d_model=[32], d_intermediate=[0], ssm_cfg=tiny.ssm_cfg,
                       attn_cfg={"num_heads": 2, "rotary_emb_dim": 8, "window_size": -1})


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """tiny (1 stage), tiny-2stage, and an isotropic model, as checkpoint folders."""
    root = tmp_path_factory.mktemp("infer-checkpoints")
    return {
        "tiny": _save(root / "tiny", model_config_from_preset("tiny")),
        "tiny2": _save(root / "tiny2", model_config_from_preset("tiny-2stage")),
        "iso": _save(root / "iso", isotropic_config()),
    }


@pytest.fixture(scope="session")
def tiny(checkpoints) -> DnaModel:
    return load(checkpoints["tiny"], device="cpu")


@pytest.fixture(scope="session")
def tiny2(checkpoints) -> DnaModel:
    return load(checkpoints["tiny2"], device="cpu")


@pytest.fixture(scope="session")
def chr22(shared_data):
    """fetch(start, end) -> upper-case-preserving str of real hg19 chr22."""
    fasta = pysam.FastaFile(str(shared_data / "hg19-chr22" / "chr22.fa.gz"))

    def fetch(start: int, end: int) -> str:
        return fasta.fetch("chr22", start, end)

    return fetch


@pytest.fixture
def small_genome(chr22, write_fasta, data_cache):
    """A three-sequence genome of real chr22 pieces: with N runs, all N, and N-free."""
    from dnahnet.data.genome import Genome

    path = write_fasta({
        "chrA": chr22(GAPPY[1], GAPPY[1] + SMALL_SIZES["chrA"]),
        "chrB": "N" * SMALL_SIZES["chrB"],
        "chrC": chr22(CLEAN[1], CLEAN[1] + SMALL_SIZES["chrC"]),
    }, "small.fa")
    return Genome(path, cache_dir=data_cache)


def nan_equal(a: np.ndarray, b: np.ndarray, atol: float = 0.0) -> bool:
    """Same NaN pattern and values within atol elsewhere."""
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    ok = ~np.isnan(a)
    return bool(np.allclose(a[ok], b[ok], rtol=0, atol=atol)) if atol else bool(np.array_equal(a[ok], b[ok]))
