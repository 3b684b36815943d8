"""The shared pieces every command uses: gzip-aware lines, one chromosome-name rule, one --device rule."""

from __future__ import annotations

import gzip

import pytest
import torch

from dnahnet.devices import resolve_device
from dnahnet.errors import DnahnetInputError
from dnahnet.infer.variants import match_contig
from dnahnet.io.chrom_names import ChromMatcher, reconcile_chrom_names
from dnahnet.io.text import numbered_lines


def test_numbered_lines_skip_headers_and_split_tabs_or_spaces(tmp_path):
    text = "#c\ts\te\ntrack name=x\nbrowser hide all\n\nchr1\t0\t5\tgene one\nchr2  7   9 b\n"
    plain, gz = tmp_path / "a.txt", tmp_path / "a.txt.gz"
    plain.write_text(text)
    with gzip.open(gz, "wt") as fh:
        fh.write(text)
    expected = [(5, ["chr1", "0", "5", "gene one"]), (6, ["chr2", "7", "9", "b"])]
    assert list(numbered_lines(plain)) == expected and list(numbered_lines(gz)) == expected
    gz.write_bytes(gzip.compress(b"chr1\t0\t\xff\n"))
    with pytest.raises(DnahnetInputError, match="not a UTF-8 text file"):
        list(numbered_lines(gz))


def test_vcf_contigs_and_annotations_follow_one_name_rule():
    genome = ["chr1", "chrM", "NC_000913", "2"]
    for name, want in [("1", "chr1"), ("MT", "chrM"), ("M", "chrM"), ("NC_000913.3", "NC_000913"), ("chr2", "2"),
                       ("CHR1", "chr1"), ("3", None)]:
        assert match_contig(name, genome) == want == ChromMatcher(genome)(name)
        mapping, _ = reconcile_chrom_names([name, "1"], genome)
        assert mapping.get(name) == want
    # Two genome names with one key: neither is guessed.
    assert ChromMatcher(["chrM", "MT"])("M") is None and ChromMatcher(["chrM", "MT"])("MT") == "MT"


def test_one_device_rule():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "mps", "cpu:x"):
        with pytest.raises(DnahnetInputError, match="--device: expected auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(DnahnetInputError, match="CUDA is not available"):
            resolve_device("cuda", local_rank=0)
    else:
        assert resolve_device("cuda", local_rank=0) == torch.device("cuda", 0)
