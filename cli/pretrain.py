"""`dnahnet pretrain`: train a model on a genome (or text) with a progress bar; thin over `dnahnet.train.trainer`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dnahnet.errors import DnahnetInputError
from dnahnet.io.options import parse_count

# Budget of a bare `dnahnet pretrain` when the preset sets none. `dnahnet pretrain --out runs/pretrain`
# (cpu-small, demo genome; 2 CPU cores, 2026-11-24): 300 steps = 2.46M bases in about 5 minutes at
# ~9k bases/s, ending at 1.80 held-out bits per base (uniform is 2.0) with compression L/M 3.00 (target 3).
DEFAULT_STEPS = 300
class ProgressReporter:
    """Rank 0's view of training: a rich progress bar on a terminal, one line per logged step otherwise."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console()
        self.progress = None
        self.task = None
        self.last_eval: float | None = None

    def __call__(self, trainer, metrics: dict) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        from rich.table import Column

        if not trainer.env.is_main:
            return
        if "eval_bits_per_base" in metrics:
            self.last_eval = metrics["eval_bits_per_base"]
        parts = [f"loss {metrics['loss']:.3f}", f"{metrics['bits_per_base']:.3f} bits/base"]
        if metrics["compression"]:
            parts.append("L/M " + "/".join(f"{c:.2f}" for c in metrics["compression"]))
        parts.append(f"{metrics['bases_per_s']:,.0f} bases/s")
        if self.last_eval is not None:
            parts.append(f"held-out {self.last_eval:.3f}")
        info = "  ".join(parts)
        step, total = metrics["step"], trainer.total_steps
        if not self.console.is_terminal:  # log files: plain lines at the logging interval
            if step % max(trainer.config.log_every, 1) == 0 or "eval_bits_per_base" in metrics or step == total:
                self.console.print(f"step {step}/{total}  {info}", highlight=False, soft_wrap=True)
            return
        if self.progress is None:
            self.progress = Progress(
                TextColumn("step"), MofNCompleteColumn(), BarColumn(bar_width=20), TimeRemainingColumn(),
                TextColumn("{task.fields[info]}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
                console=self.console, expand=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("pretrain", total=total, completed=step - 1, info="")
        self.progress.update(self.task, completed=step, info=info)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def register(app: typer.Typer) -> None:
    @app.command()
    def pretrain(
        genome: Annotated[Optional[list[Path]], typer.Option("--genome", help="Genome FASTA (plain or bgzip) or GenBank; repeat it, or give a folder or a TSV manifest (path, name, weight), for a multi-genome corpus. Default: the bundled demo genome.")] = None,
        text: Annotated[Optional[list[Path]], typer.Option("--text", help="Text mode: a file or folder of files read as raw bytes.")] = None,
        config: Annotated[Optional[str], typer.Option("--config", help="Preset name (see `dnahnet presets`) or a JSON/YAML file. Default: cpu-small.")] = None,
        out: Annotated[Path, typer.Option("--out", help="Run folder: latest/ and best/ checkpoints, metrics.jsonl.")] = Path("runs/pretrain"),
        steps: Annotated[Optional[int], typer.Option("--steps", help="Optimiser steps to train.")] = None,
        bases: Annotated[Optional[str], typer.Option("--bases", help="Training budget in bases, e.g. 50M or 1e9 (instead of --steps).")] = None,
        seq_len: Annotated[Optional[int], typer.Option("--seq-len", help="Window length in bases.")] = None,
        batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Windows per micro-batch on each device; gradient accumulation makes up --tokens-per-step.")] = None,
        tokens_per_step: Annotated[Optional[str], typer.Option("--tokens-per-step", help="Bases per optimiser step over all devices, e.g. 8192 or 1M.")] = None,
        lr: Annotated[Optional[float], typer.Option("--lr", help="Base learning rate (stage multipliers apply on top).")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its latest checkpoint, exactly.")] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run in --out.")] = False,
        device: Annotated[Optional[str], typer.Option("--device", help="auto (CUDA if available), cpu, cuda or cuda:N.")] = None,
        seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the initialisation and of the window draws.")] = None,
        eval_every: Annotated[Optional[int], typer.Option("--eval-every", help="Steps between held-out evaluations.")] = None,
        distributed: Annotated[Optional[str], typer.Option("--distributed", help="Under torchrun: ddp or fsdp.")] = None,
        compile_: Annotated[bool, typer.Option("--compile", help="torch.compile each Mamba-2/attention block (compile time reported separately).")] = False,
        set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override one config field, SECTION.FIELD=VALUE (repeatable): --set train.lr=3e-4 --set model.d_model=[256,384]. See `dnahnet presets show NAME`.")] = None,
    ) -> None:
        """Pretrain a DNA (or byte) language model; with no arguments, cpu-small on the bundled demo genome.

        Example: dnahnet pretrain --genome hg38.fa.gz --config cpu-small --bases 50M --out runs/hg38
        (multi-GPU: torchrun --nproc-per-node 8 -m dnahnet_cli pretrain --config paper-dna-hnet-mamba2 ...)
        """
        from dnahnet.train import checkpoint as ckpt
        from dnahnet.train.trainer import pretrain as run, run_configs

        if genome and text:
            raise DnahnetInputError("give --genome or --text, not both")
        train = {
            "steps": steps, "bases": parse_count(bases, "--bases"), "micro_batch_size": batch_size,
            "tokens_per_step": parse_count(tokens_per_step, "--tokens-per-step"), "lr": lr, "device": device,
            "seed": seed, "eval_every": eval_every, "distributed": distributed, "compile": True if compile_ else None,
        }
        data = {"seq_len": seq_len, "seed": seed}
        if genome:
            data["genome"] = [str(p) for p in genome]
        if text:
            data["text"] = [str(p) for p in text]
        resume_from = None
        if resume:
            resume_from = ckpt.find_checkpoint(out)
            if resume_from is None:
                raise DnahnetInputError("nothing to resume: no checkpoint in this folder (leave out --resume to start)", file=str(out))
        model_cfg, train_cfg, data_cfg = run_configs(config, resume_from=resume_from, train=train, data=data,
                                                     overrides=set_)
        if resume_from is None and tokens_per_step is None and (batch_size is not None or seq_len is not None):
            # The preset's step size cannot be made of whole micro-batches of the size asked for:
            # train one micro-batch per device and step (B x L x world bases) instead of failing.
            from dnahnet.distributed import launched_world_size

            per_pass = data_cfg.seq_len * train_cfg.micro_batch_size * launched_world_size()
            if train_cfg.tokens_per_step % per_pass:
                typer.echo(f"note: --tokens-per-step {per_pass:,} (= --seq-len {data_cfg.seq_len} x --batch-size "
                           f"{train_cfg.micro_batch_size} x processes): the preset's {train_cfg.tokens_per_step:,} is "
                           "not a multiple of it", err=True)
                train_cfg.tokens_per_step = per_pass
        if train_cfg.steps is None and train_cfg.bases is None:
            train_cfg.steps = DEFAULT_STEPS
        reporter = ProgressReporter()
        try:
            trainer = run(model_cfg, train_cfg, data_cfg, out, resume=resume, overwrite=overwrite, on_step=reporter)
        finally:
            reporter.stop()
        if not trainer.env.is_main:
            return
        latest = out / ckpt.LATEST
        typer.echo(f"checkpoint  {latest}  (step {trainer.step}, {trainer.step * train_cfg.tokens_per_step:,} bases)")
        evals = [m for m in trainer.history if "eval_bits_per_base" in m]
        if evals:
            typer.echo(f"held-out    {evals[-1]['eval_bits_per_base']:.4f} bits/base at step {evals[-1]['step']}")
        if trainer.best is not None and (out / ckpt.BEST).exists():
            typer.echo(f"best        {out / ckpt.BEST}  ({trainer.best:.4f} bits/base)")
        typer.echo(f"metrics     {out / ckpt.METRICS}")
        typer.echo(f"precision   {trainer.precision.describe()}")
        if train_cfg.compile:
            from dnahnet.nn.compile import compile_seconds

            typer.echo(f"compile     {trainer.compile_s:.1f} s compiling + {trainer.elapsed - trainer.compile_s:.1f} s running "
                       f"in training steps; {compile_seconds():.1f} s compiling in all (evaluation graphs too)")
