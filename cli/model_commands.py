"""`dnahnet info` and `dnahnet presets`: look at checkpoints and configs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dnahnet.config import list_presets, load_preset, model_config_from_preset


def register(app: typer.Typer) -> None:
    @app.command()
    def presets() -> None:
        """List the bundled presets with their parameter counts.

        Example: dnahnet presets
        """
        import torch

        from dnahnet.nn.hnet import HNetLM

        for name in list_presets():
            config = model_config_from_preset(name)
            with torch.device("meta"):
                model = HNetLM(config)
            n = sum(p.numel() for p in model.parameters())
            desc = load_preset(name).get("description", "official H-Net text config")
            typer.echo(f"{name:28s} {n / 1e6:8.2f}M  {json.dumps(config.arch_layout)}  {desc}")

    @app.command()
    def info(checkpoint: Path = typer.Argument(..., help="Checkpoint folder")) -> None:
        """Describe a checkpoint: architecture, parameters, training progress.

        Example: dnahnet info runs/demo/checkpoint
        """
        from dnahnet.train.checkpoint import METRICS, TRAIN, load_model

        model = load_model(checkpoint)
        cfg = model.config
        n = sum(p.numel() for p in model.parameters())
        typer.echo(f"checkpoint   {checkpoint}")
        typer.echo(f"arch_layout  {json.dumps(cfg.arch_layout)}")
        typer.echo(f"d_model      {cfg.d_model}")
        typer.echo(f"parameters   {n:,}")
        typer.echo(f"routed       {cfg.n_routed} stage(s), chunking {cfg.chunking}, target ratio {cfg.stage_target_ratios()}")
        train = checkpoint / TRAIN
        if train.exists():
            info_ = json.loads(train.read_text())
            typer.echo(f"trained      step {info_.get('step')}, bases {info_.get('bases_seen')}")
        metrics = checkpoint / METRICS
        if metrics.exists():
            lines = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            evals = [m for m in lines if "eval_bits_per_base" in m]
            if evals:
                last = evals[-1]
                typer.echo(f"held-out     {last['eval_bits_per_base']:.4f} bits/base at step {last.get('step')}")
