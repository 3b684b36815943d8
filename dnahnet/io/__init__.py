"""File formats: gzip-aware text reading (`text`), BED/bedGraph readers and writers (`bed`), FASTA records
(`fasta`), GenBank parsed once (`genbank`), GFF3/GTF/GenBank/BED12 features in one table (`annotations`),
chromosome-name matching (`chrom_names`), CSV/TSV tables (`tables`: fine-tuning sequences, variants,
essentiality labels, corpus manifests), genome-browser tracks, FASTA indexes, weights; every output written
atomically."""

from dnahnet.io.atomic import atomic_open, atomic_path, check_writable_dir

__all__ = ["atomic_open", "atomic_path", "check_writable_dir"]
