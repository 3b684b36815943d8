"""A training run's data from its `DataConfig`: which source (FASTA, GenBank, several genomes, a TSV manifest,
a folder, text files), its train/valid/test splits, and the per-rank batches and held-out batches built on them.

The Trainer takes any batch source; this is the one `dnahnet pretrain` builds.
The step geometry (`accumulation_steps`) is checked here, before any model
exists, so a batch size that does not divide the step fails at once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from dnahnet.config import DataConfig, TrainConfig
from dnahnet.data.corpus import CorpusSampler, GenomeCorpus, genome_format, genome_splits
from dnahnet.data.genome import Genome
from dnahnet.data.intervals import Split, WindowSource, build_splits
from dnahnet.data.loader import WindowBatches, make_eval_batches
from dnahnet.data.text import ByteCorpus, text_splits
from dnahnet.distributed import DistEnv
from dnahnet.errors import DnahnetInputError


def accumulation_steps(tokens_per_step: int, seq_len: int, micro_batch_size: int, world_size: int) -> int:
    """Micro-batches per rank and step, from tokens_per_step = seq_len * micro * accumulation * world."""
    per_pass = seq_len * micro_batch_size * world_size
    if micro_batch_size < 1 or tokens_per_step < per_pass or tokens_per_step % per_pass:
        raise DnahnetInputError(
            f"tokens_per_step {tokens_per_step} must be a multiple of seq_len {seq_len} x micro_batch_size "
            f"{micro_batch_size} x {world_size} process(es) = {per_pass}"
        )
    return tokens_per_step // per_pass


def genome_source_and_splits(cfg: DataConfig) -> tuple[WindowSource, dict[str, Split]]:
    """(source, splits) in DNA mode: one FASTA as a `Genome`; several files, a folder, a TSV manifest,
    GenBank or `split_by: genome` as a `GenomeCorpus` (sequence names `genome/contig`)."""
    if not cfg.genome:
        raise DnahnetInputError("no genome given (a FASTA/GenBank file, several, a folder or a TSV manifest)")
    single = Path(cfg.genome[0])
    if len(cfg.genome) == 1 and cfg.split_by != "genome" and single.is_file() and genome_format(single) != "genbank" \
            and single.suffix.lower() not in (".tsv", ".txt", ".manifest"):
        source = Genome(single)
        return source, build_splits(source, cfg)
    corpus = GenomeCorpus(cfg.genome)
    if cfg.split_by == "genome" and len(corpus.genomes) == 1:
        # one genome cannot be split by genome: hold out the ends of its contigs (split_by "fraction")
        return corpus, build_splits(corpus, dataclasses.replace(cfg, split_by="fraction"))
    if cfg.split_by == "genome":
        splits = genome_splits(corpus, cfg.valid_genomes, cfg.test_genomes, cfg.valid_fraction, cfg.test_fraction, seed=cfg.seed)
        if not splits["train"].intervals:
            raise DnahnetInputError("split_by 'genome' left no genome for training", file=str(corpus.path))
        return corpus, splits
    return corpus, build_splits(corpus, cfg)


def build_data(
    data_config: DataConfig, train_config: TrainConfig, env: DistEnv | None = None
) -> tuple[WindowBatches, list[dict[str, torch.Tensor]]]:
    """(this rank's WindowBatches, fixed held-out batches) for a DataConfig: a genome or corpus, or text files."""
    env = env or DistEnv()
    cfg = data_config
    if cfg.mode == "text":
        source = ByteCorpus(cfg.text)
        splits = text_splits(source, cfg.valid_fraction, cfg.test_fraction)
    elif cfg.mode == "dna":
        source, splits = genome_source_and_splits(cfg)
    else:
        raise DnahnetInputError(f"data mode: must be 'dna' or 'text', got {cfg.mode!r}")
    accumulation_steps(train_config.tokens_per_step, cfg.seq_len, train_config.micro_batch_size, env.world_size)
    if cfg.mode == "dna" and hasattr(source, "genome_of"):  # a GenomeCorpus: per-genome sampling weights
        sampler = CorpusSampler(
            splits["train"], cfg.seq_len, weighting=cfg.genome_weighting, max_n_fraction=cfg.max_n_fraction, seed=cfg.seed
        )
    else:
        sampler = splits["train"].sampler(cfg.seq_len, max_n_fraction=cfg.max_n_fraction, seed=cfg.seed)
    batches = WindowBatches(
        sampler, train_config.tokens_per_step // cfg.seq_len, micro_batch_size=train_config.micro_batch_size,
        rank=env.rank, world_size=env.world_size, rc_prob=cfg.rc_prob, softmask_weight=cfg.softmask_weight,
    )
    eval_batches = []
    if cfg.eval_windows > 0:
        # held-out bits per base weight every non-N base 1, whatever the training soft-mask weight
        eval_batches = make_eval_batches(
            splits["valid"], cfg.eval_windows, cfg.seq_len, train_config.micro_batch_size,
            seed=cfg.seed, max_n_fraction=cfg.max_n_fraction, softmask_weight=1.0,
        )
    return batches, eval_batches
