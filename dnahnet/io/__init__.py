"""File formats: gzip-aware text reading (`text`), BED/bedGraph readers and writers (`bed`), chromosome-name
matching (`chrom_names`), genome-browser tracks, FASTA indexes, weights; every output written atomically."""

from dnahnet.io.atomic import atomic_open, atomic_path, check_writable_dir

__all__ = ["atomic_open", "atomic_path", "check_writable_dir"]
