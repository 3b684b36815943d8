"""`dnahnet info` and `dnahnet presets`: look at checkpoints and configs."""

from __future__ import annotations

import json
from typing import Optional
from pathlib import Path

import typer

from dnahnet.config import list_presets, load_preset, model_config_from_preset


def register(app: typer.Typer) -> None:
    @app.command()
    def presets(
        action: Optional[str] = typer.Argument(None, help="show: print one preset to edit", show_default=False),
        name: Optional[str] = typer.Argument(None, help="Preset to show", show_default=False),
        fmt: str = typer.Option("json", "--format", help="json or yaml (for show)"),
    ) -> None:
        """List the bundled presets with their parameter counts, or print one (model, train, data) to edit.

        Example: dnahnet presets show cpu-small --format yaml > my-run.yaml
        """
        import torch

        from dnahnet.errors import DnahnetInputError
        from dnahnet.nn.hnet import HNetLM

        if action is not None:
            if action != "show" or name is None:
                raise DnahnetInputError(f"unknown presets action {action!r}: use `dnahnet presets show NAME`"
                                        if action != "show" else "which preset? dnahnet presets show NAME")
            if fmt not in ("json", "yaml"):
                raise DnahnetInputError(f"--format must be json or yaml, got {fmt!r}")
            data = load_preset(name)
            if fmt == "yaml":
                import yaml

                typer.echo(yaml.safe_dump(data, sort_keys=False).rstrip())
            else:
                typer.echo(json.dumps(data, indent=2))
            return
        for name in list_presets():
            config = model_config_from_preset(name)
            with torch.device("meta"):
                model = HNetLM(config)
            n = sum(p.numel() for p in model.parameters())
            desc = load_preset(name).get("description", "official H-Net text config")
            typer.echo(f"{name:28s} {n / 1e6:8.2f}M  {json.dumps(config.arch_layout)}  {desc}")

    @app.command()
    def flops(
        config: str = typer.Argument(..., help="Preset name, config JSON/YAML, or a checkpoint folder"),
        seq_len: int = typer.Option(1024, "--seq-len", help="Sequence length L"),
        compression: str = typer.Option("", help="Comma-separated L/M per routed stage (default: target ratios)"),
        attention: str = typer.Option("full", help="Attention score convention: full (the L x L score block) or causal (its half); SDPA executes between the two"),
    ) -> None:
        """Analytic training FLOPs per base, with a breakdown by part.

        Example: dnahnet flops paper-dna-hnet-transformer --seq-len 1024
        """
        from dnahnet.errors import DnahnetInputError
        from dnahnet.io.checkpoint import read_config
        from dnahnet.io.options import check_int
        from dnahnet.nn.flops import count_flops

        check_int(seq_len, "--seq-len")
        path = Path(config)
        cfg = read_config(path) if path.is_dir() else model_config_from_preset(config)
        ratios = None
        if compression:
            try:
                ratios = [float(x) for x in compression.split(",")]
            except ValueError:
                raise DnahnetInputError(f"--compression: expected numbers separated by commas, got {compression!r}") from None
            if len(ratios) != cfg.n_routed or any(r < 1 for r in ratios):
                raise DnahnetInputError(f"--compression: expected {cfg.n_routed} values >= 1, got {compression!r}")
        if attention not in ("full", "causal"):
            raise DnahnetInputError(f"--attention: must be full or causal, got {attention!r}")
        report = count_flops(cfg, seq_len, ratios, attention=attention)
        typer.echo(f"config {config}: L = {seq_len}, compression {ratios or cfg.stage_target_ratios() if cfg.n_routed else 'n/a'}")
        typer.echo(f"{'part':12s} {'fwd FLOPs/base':>16s} {'share':>7s}")
        for part, value in report.parts.items():
            typer.echo(f"{part:12s} {value / seq_len:16,.0f} {value / report.forward:7.1%}")
        typer.echo(f"{'forward':12s} {report.per_base(training=False):16,.0f}")
        typer.echo(f"{'training':12s} {report.per_base(training=True):16,.0f}  (3 x forward)")

    @app.command()
    def convert(
        config: Path = typer.Option(..., help="Official H-Net config JSON (e.g. configs/hnet_1stage_L.json)"),
        weights: Path = typer.Option(..., help="Its state dict (.safetensors, or .pt read weights-only: tensors and omegaconf configs, no other pickled class)"),
        out: Path = typer.Option(..., help="Checkpoint folder to write"),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out folder (whole)."),
    ) -> None:
        """Import an official H-Net checkpoint (same parameter names) as a dnahnet checkpoint folder.

        Example: dnahnet convert --config hnet_1stage_L.json --weights hnet_1stage_L.pt --out ckpt/hnet_1stage_L
        """
        from dnahnet.io.checkpoint import import_official
        from dnahnet.io.paths import check_outputs, input_file

        input_file(config, "--config", "config file")
        input_file(weights, "--weights", "weights file")
        check_outputs({"--out": [out / "config.json", out / "model.safetensors"]}, {"--config": config, "--weights": weights})
        typer.echo(f"checkpoint: {import_official(config, weights, out, overwrite=overwrite)}")

    @app.command()
    def info(
        folder: Optional[Path] = typer.Argument(None, help="Checkpoint folder (or give it as --checkpoint)", show_default=False),
        checkpoint_opt: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint folder (a run folder means its latest/)"),
    ) -> None:
        """Describe a checkpoint: architecture, parameters, training progress.

        Example: dnahnet info --checkpoint runs/demo/train/latest
        """
        from dnahnet.errors import DnahnetInputError
        from dnahnet.hub import resolve_checkpoint
        from dnahnet.io.checkpoint import METRICS, TRAIN, load_model

        if (folder is None) == (checkpoint_opt is None):
            raise DnahnetInputError("give the checkpoint once: dnahnet info --checkpoint DIR (or dnahnet info DIR)")
        checkpoint = resolve_checkpoint(folder or checkpoint_opt)
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
            if info_.get("precision"):
                typer.echo(f"precision    trained in {info_['precision']}: {info_.get('precision_note', 'no reason recorded')}")
        from dnahnet.devices import cpu_bf16_support

        native, because = cpu_bf16_support()
        typer.echo(f"cpu bf16     {'native' if native else 'not native'} on this machine ({because}): "
                   f"inference --dtype bf16 {'runs bf16 autocast' if native else 'is refused (DNAHNET_CPU_BF16=1 forces it)'}; fp32 is the default")
        metrics = checkpoint / METRICS
        if metrics.exists():
            lines = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            evals = [m for m in lines if "eval_bits_per_base" in m]
            if evals:
                last = evals[-1]
                typer.echo(f"held-out     {last['eval_bits_per_base']:.4f} bits/base at step {last.get('step')}")
