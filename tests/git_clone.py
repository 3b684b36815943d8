"""For tests of the bench scripts that read a commit's files with `git show`: the checkout, and a marker
that skips them outside a git clone (a source tarball, or no git on the machine)."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_A_CLONE = shutil.which("git") is not None and subprocess.run(
    ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True).returncode == 0
needs_a_clone = pytest.mark.skipif(not IN_A_CLONE, reason="needs git and a clone of the repository (reads a commit's files)")
