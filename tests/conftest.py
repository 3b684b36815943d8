"""Shared pytest fixtures: where the real data lives, the bundled demo genome, and the fused CPU kernels built."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from shared_paths import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's shared real-data folder (hg19 chr22, U. maydis, Leptospira); skip when absent."""
    path = SHARED_DATA
    if not path.is_dir():
        pytest.skip(f"shared data folder not found: {path} (set DNAHNET_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """A private cache folder for indexes and N-run tables built during the tests."""
    return tmp_path_factory.mktemp("dnahnet-cache")


@pytest.fixture(scope="session")
def demo_genome(data_cache):
    """The bundled demo slice of hg19 chr22 as a Genome."""
    from dnahnet.data.demo import demo_genome_path
    from dnahnet.data.genome import Genome

    return Genome(demo_genome_path(), cache_dir=data_cache)


@pytest.fixture(scope="session")
def demo_sequence() -> bytes:
    """The demo slice read the slow, obvious way (whole record, lines joined), for comparisons."""
    from dnahnet.data.demo import demo_genome_path

    with gzip.open(demo_genome_path(), "rb") as fh:
        lines = fh.read().split(b"\n")
    return b"".join(line for line in lines[1:] if not line.startswith(b">"))


@pytest.fixture
def write_fasta(tmp_path):
    """Write {name: sequence} as a plain FASTA (60 bases a line) and return its path."""

    def write(records: dict[str, str | bytes], name: str = "tiny.fa", folder: Path | None = None) -> Path:
        path = (folder or tmp_path) / name
        with open(path, "wb") as fh:
            for rec, seq in records.items():
                seq = seq.encode() if isinstance(seq, str) else seq
                fh.write(b">" + rec.encode() + b"\n")
                for a in range(0, len(seq), 60):
                    fh.write(seq[a : a + 60] + b"\n")
        return path

    return write


@pytest.fixture(scope="session")
def cpu_kernel_built() -> None:
    """The fused CPU kernels (`dnahnet.nn.cpu_kernel`) built and registered; skip, naming why, where they cannot be."""
    from dnahnet.nn import cpu_kernel

    why = cpu_kernel.load()
    if why is not None:
        pytest.skip(f"the fused CPU kernel could not be built here: {why}")
