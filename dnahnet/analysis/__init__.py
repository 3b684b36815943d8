"""Boundary analysis: derived features, boundary–feature enrichment, reports (files are read in `dnahnet.io`)."""

from dnahnet.analysis.annotations import (
    derive_codon_sites,
    derive_intergenic,
    derive_introns,
    derive_promoters,
    feature_role,
    load_annotation,
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
from dnahnet.io.annotations import FeatureTable  # the table every analysis takes

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
    "read_boundaries",
    "selection_rates",
    "sequence_axis",
    "softmask_repeats",
    "start_codon_control",
]
