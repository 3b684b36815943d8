"""`dnahnet finetune`, `dnahnet predict`, `dnahnet benchmark gue`: thin wrappers over dnahnet.finetune and dnahnet_pipelines.gue."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Optional

import typer

from dnahnet_cli.invocation import command_line
from dnahnet_cli.progress import progress

benchmark_app = typer.Typer(help="Downstream benchmarks of pretrained checkpoints.", no_args_is_help=True)


def _note(message: str) -> None:
    print(f"dnahnet: {message}", file=sys.stderr)


def _genome(path: Optional[Path]):
    if path is None:
        return None
    from dnahnet.data.genome import Genome

    return Genome(path)


@benchmark_app.command("gue")
def gue(
    checkpoints: str = typer.Option("", "--checkpoints", help="Comma-separated checkpoints (folders or Hub ids); empty = k-mer baseline only."),
    data: Optional[Path] = typer.Option(None, "--data", help="GUE folder (default: ../shared/data/gue beside the checkout, or $DNAHNET_GUE)."),
    out: Path = typer.Option(..., "--out", help="Output folder: results.json, report.md, one run folder per task x checkpoint x mode."),
    tasks: str = typer.Option("all", "--tasks", help="Comma-separated task folders (default all 13)."),
    modes: str = typer.Option("probe,full", "--modes", help="Per checkpoint: probe, full, or both."),
    max_train: Optional[int] = typer.Option(None, "--max-train", help="Use at most this many training sequences per task (seeded subsample)."),
    kmax: int = typer.Option(6, "--kmax", help="Largest k of the k-mer baseline (k = 1..kmax chosen on dev)."),
    epochs: float = typer.Option(3.0, "--epochs", help="Full fine-tune epochs."),
    eval_every: int = typer.Option(100, "--eval-every", help="Full fine-tune: steps between dev evaluations (early stopping)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Sequences per batch."),
    n_boot: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed (subsamples, probes, fine-tuning)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu, cuda or cuda:N."),
    report_only: bool = typer.Option(False, "--report-only", help="Report the finished runs in --out only; train nothing (runs missing for a task are left out and said)."),
) -> None:
    """GUE: k-mer baseline, frozen probe and full fine-tune per checkpoint; test AUROC with intervals beside published ones.

    Example: dnahnet benchmark gue --checkpoints runs/demo/train/latest --tasks prom_prom_core_tata,tf_0 --modes probe --out runs/gue
    """
    from dnahnet_pipelines.gue import GueConfig, run_gue

    cfg = GueConfig(
        checkpoints=[c for c in checkpoints.split(",") if c], data=data, out=out,
        tasks=None if tasks == "all" else [t for t in tasks.split(",") if t],
        modes=[m for m in modes.split(",") if m], max_train=max_train, kmax=kmax, epochs=epochs,
        eval_every=eval_every, batch_size=batch_size, n_boot=n_boot, seed=seed, device=device,
        report_only=report_only,
    )
    report = run_gue(cfg, command=command_line(), log=lambda m: _note(m))
    _note(f"wrote {report}")


def register(app: typer.Typer) -> None:
    @app.command()
    def finetune(
        checkpoint: str = typer.Option(..., "--checkpoint", help="Pretrained checkpoint folder or Hub id org/name[@revision]."),
        train: Path = typer.Option(..., "--train", help="Training set: CSV/TSV (sequence,label), labelled FASTA, or BED (with --genome)."),
        dev: Optional[Path] = typer.Option(None, "--dev", help="Dev set (same formats): chooses the probe's regularisation, stops full training early."),
        test: Optional[Path] = typer.Option(None, "--test", help="Test set (same formats), evaluated once at the end."),
        task: str = typer.Option("classify", "--task", help="classify (binary labels 0/1) or regress (numeric)."),
        mode: str = typer.Option("probe", "--mode", help="probe (logistic/ridge on frozen mean-pooled embeddings) or full (head + backbone)."),
        out: Path = typer.Option(..., "--out", help="New run folder (a checkpoint that predicts)."),
        genome: Optional[Path] = typer.Option(None, "--genome", help="Genome FASTA for BED inputs."),
        label_column: int = typer.Option(5, "--label-column", help="1-based label column of BED inputs."),
        layer: str = typer.Option("final", "--layer", help="Embedding layer: final, encoder or main."),
        stage: int = typer.Option(0, "--stage", help="Embedding stage (0 = bases)."),
        epochs: float = typer.Option(3.0, "--epochs", help="full: training epochs (early stopping may end sooner)."),
        max_steps: Optional[int] = typer.Option(None, "--max-steps", help="full: at most this many steps."),
        lr: float = typer.Option(3e-4, "--lr", help="full: backbone learning rate (AdamW; the head uses --head-lr)."),
        head_lr: float = typer.Option(1e-3, "--head-lr", help="full: head learning rate."),
        warmup: float = typer.Option(0.1, "--warmup", help="full: warm-up fraction of the steps."),
        eval_every: int = typer.Option(100, "--eval-every", help="full: steps between dev evaluations."),
        patience: int = typer.Option(3, "--patience", help="full: stop after this many dev evaluations without improvement."),
        max_train: Optional[int] = typer.Option(None, "--max-train", help="Use at most this many training sequences (seeded subsample)."),
        batch_size: int = typer.Option(32, "--batch-size", help="Sequences per batch."),
        n_boot: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% intervals."),
        seed: int = typer.Option(0, "--seed", help="Random seed."),
        device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu, cuda or cuda:N."),
    ) -> None:
        """Fine-tune a checkpoint on labelled sequences; the run folder predicts (`dnahnet predict`, `dnahnet.load(RUN).predict`).

        Metrics on dev and test: AUROC, AUPRC, MCC, accuracy (classify) or Spearman, Pearson, R² (regress),
        each with a bootstrap 95% interval, in RUN/finetune.json.

        Example: dnahnet finetune --checkpoint runs/demo/train/latest --train gue/tf_0/train.csv.gz --dev gue/tf_0/dev.csv.gz --test gue/tf_0/test.csv.gz --mode probe --out runs/tf0-probe
        """
        from dnahnet.finetune import FullConfig, finetune as run_finetune
        from dnahnet.finetune.metrics import Metric, summary
        from dnahnet.io.paths import check_command

        check_command({"--out": out / "finetune.json"}, {"--train": train, "--dev": dev, "--test": test, "--genome": genome},
                      {"--batch-size": (batch_size, 1), "--eval-every": (eval_every, 1), "--patience": (patience, 1)})
        cfg = FullConfig(lr=lr, head_lr=head_lr, batch_size=batch_size, epochs=epochs, max_steps=max_steps,
                         warmup_fraction=warmup, eval_every=eval_every, patience=patience, seed=seed, layer=layer, stage=stage)
        meta = run_finetune(
            checkpoint, train, dev, out, test=test, task=task, mode=mode, genome=_genome(genome), label_column=label_column,
            config=cfg, batch_size=batch_size, max_train=max_train, device=device, n_boot=n_boot, command=command_line(),
            log=_note, progress=functools.partial(progress, unit="bases", label="embed"),
        )
        for split, metrics in meta["metrics"].items():
            _note(f"{split}: " + summary({k: Metric(**v) for k, v in metrics.items()}))
        _note(f"run folder: {out}")

    @app.command()
    def predict(
        checkpoint: str = typer.Option(..., "--checkpoint", help="A fine-tuned run folder (from dnahnet finetune) or its Hub id."),
        table: Path = typer.Option(..., "--table", help="Sequences: CSV/TSV with a 'sequence' column, FASTA, or BED (with --genome)."),
        out: str = typer.Option("-", "--out", help="Output TSV: name, label (if given), prediction ('-' = stdout)."),
        genome: Optional[Path] = typer.Option(None, "--genome", help="Genome FASTA for BED inputs."),
        label_column: int = typer.Option(5, "--label-column", help="1-based label column of BED inputs."),
        batch_size: int = typer.Option(32, "--batch-size", help="Sequences per forward pass."),
        n_boot: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the intervals when the table has labels."),
        device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu, cuda or cuda:N."),
    ) -> None:
        """Predictions of a fine-tuned run: P(label 1) or the regressed value; metrics too when the table has labels.

        Example: dnahnet predict --checkpoint runs/tf0-probe --table gue/tf_0/test.csv.gz --out preds.tsv
        """
        from dnahnet.finetune import predict_table
        from dnahnet.finetune.metrics import Metric, summary
        from dnahnet.io.paths import check_command

        check_command({"--out": out}, {"--table": table, "--genome": genome}, {"--batch-size": (batch_size, 1)})
        metrics = predict_table(checkpoint, table, out, genome=_genome(genome), label_column=label_column,
                                batch_size=batch_size, device=device, n_boot=n_boot,
                                progress=functools.partial(progress, unit="bases", label="predict"))
        if metrics:
            _note(summary({k: Metric(**v) for k, v in metrics.items()}))

    app.add_typer(benchmark_app, name="benchmark")
