"""Boundary analysis: annotation loading, boundary–feature enrichment, reports."""

from dnahnet.analysis.annotations import (
    FeatureTable,
    derive_codon_sites,
    derive_intergenic,
    derive_introns,
    derive_promoters,
    feature_role,
    load_annotation,
    read_bed_features,
    read_genbank,
    read_gff3,
    read_gtf,
    reconcile_chrom_names,
    softmask_repeats,
)
from dnahnet.analysis.context_null import ContextModel, SequenceAxis, predictability
from dnahnet.analysis.enrichment import (
    BoundarySet,
    analyse_boundaries,
    chunk_lengths,
    codon_periodicity,
    edge_auc,
    edge_enrichment,
    grid_boundaries,
    read_boundaries,
    selection_rates,
    sequence_axis,
)
from dnahnet.analysis.multiple_testing import bh_qvalues
from dnahnet.analysis.report import annotate
from dnahnet.analysis.start_codons import start_codon_control

__all__ = [
    "BoundarySet",
    "ContextModel",
    "FeatureTable",
    "SequenceAxis",
    "analyse_boundaries",
    "annotate",
    "bh_qvalues",
    "chunk_lengths",
    "codon_periodicity",
    "derive_codon_sites",
    "derive_intergenic",
    "derive_introns",
    "derive_promoters",
    "edge_auc",
    "edge_enrichment",
    "feature_role",
    "grid_boundaries",
    "load_annotation",
    "predictability",
    "read_bed_features",
    "read_boundaries",
    "read_genbank",
    "read_gff3",
    "read_gtf",
    "reconcile_chrom_names",
    "selection_rates",
    "sequence_axis",
    "softmask_repeats",
    "start_codon_control",
]
