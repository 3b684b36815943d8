"""Writers for the formats other tools read (BED, bedGraph, TSV, JSON), all atomic."""

from dnahnet.io.atomic import atomic_open, atomic_path, check_writable_dir

__all__ = ["atomic_open", "atomic_path", "check_writable_dir"]
