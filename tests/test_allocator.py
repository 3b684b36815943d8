"""The allocator tuning applies on glibc Linux and can be switched off."""

import platform
import sys

import pytest

from dnahnet.perf.allocator import keep_freed_memory


def test_opting_out_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setenv("DNAHNET_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt tuning is for glibc Linux only")
def test_glibc_accepts_the_raised_thresholds(monkeypatch):
    monkeypatch.delenv("DNAHNET_KEEP_FREED_MEMORY", raising=False)
    assert keep_freed_memory() is True
