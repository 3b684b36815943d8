"""bench/chunking_ab: another commit's routing, chunking and dechunking timed against the working tree's."""

import json
import subprocess
import sys

import pytest
from git_clone import REPO, needs_a_clone

import dnahnet.nn.chunking as chunking_module
from bench.chunking_ab import chunking_at, main

pytestmark = needs_a_clone


def test_the_old_layer_comes_from_the_commit_and_both_are_timed_in_every_round(tmp_path):
    old = chunking_at("HEAD")
    assert old is not chunking_module and old.ChunkLayer is not chunking_module.ChunkLayer
    assert old.DeChunkLayer.forward.__code__.co_filename == "HEAD:dnahnet/nn/chunking.py"
    out = tmp_path / "ab"
    assert main(["--against", "HEAD", "--batch", "2", "--length", "64", "--d-model", "16", "--repeats", "3",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    row = results["row"]
    assert len(row["old_seconds"]) == len(row["new_seconds"]) == 3 and row["pairs"] == 3
    assert row["ratio_median"] > 0 and results["max_abs_output_difference"] >= 0
    text = (out / "report.md").read_text()
    assert "python bench/chunking_ab.py --against HEAD" in text and "batch 2 x 64 positions x d_model 16" in text


@pytest.mark.parametrize("script,options,path", [
    ("chunking_ab.py", ["--out", "OUT"], "dnahnet/nn/chunking.py"),
    ("ssd_vs_minimal.py", ["--length", "64", "--repeats", "1"], "dnahnet/nn/ssd.py"),
])
def test_an_unknown_commit_is_one_line_and_exit_2(tmp_path, script, options, path):
    """The scripts that load a commit's files (`kernels_ab.module_at`) name a commit git cannot show in one line."""
    options = [str(tmp_path / "x") if o == "OUT" else o for o in options]
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), "--against", "no-such-commit", *options],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert errors[0].startswith(f"bench/{script}: error: --against no-such-commit: git cannot show {path} at that commit")
