"""`dnahnet bench inference` and `dnahnet bench train`: measured speed, memory and FLOP utilisation."""

from __future__ import annotations

from pathlib import Path

import typer

from dnahnet_cli.invocation import command_line

bench_app = typer.Typer(help="Benchmarks: inference throughput/memory by length; training MFU and profile.",
                        no_args_is_help=True)


@bench_app.command()
def inference(
    configs: str = typer.Option("bench-transformer,bench-mamba2,bench-hnet-1stage,bench-hnet-2stage,"
                                "bench-hnet-1stage-swa,bench-hnet-1stage-mamba2,bench-hnet-1stage-mamba2-m1",
                                help="Comma-separated presets (the bench-* presets are matched at ~2M parameters)"),
    lengths: str = typer.Option("1024,4096,16384,65536,131072", help="Comma-separated sequence lengths"),
    out: Path = typer.Option(Path("runs/bench-inference"), help="Output folder"),
    device: str = typer.Option("auto", help="auto, cpu or cuda (bf16 on CUDA, fp32 on CPU)"),
    modes: str = typer.Option("forward,score", help="forward (one pass) and/or score (windowed scoring)"),
    window: int = typer.Option(4096, help="Scoring window for mode 'score' (context = window / 2)"),
    repeats: int = typer.Option(3, help="Timed runs per measurement after the first pass (best is kept); 0 reports the first pass alone"),
    memory_limit_gb: float = typer.Option(None, help="CPU: address-space cap per measurement (default half the RAM)"),
    timeout_s: float = typer.Option(900.0, help="CPU: seconds per measurement before it is reported as timed out"),
    threads: int = typer.Option(None, help="CPU threads per measurement (default torch's)"),
) -> None:
    """Batch-1 throughput, latency, peak memory and FLOPs per base at increasing lengths.

    Example: dnahnet bench inference --configs bench-transformer,bench-hnet-1stage --lengths 1024,16384 --out runs/bench-inference
    """
    from dnahnet.perf.inference import InferenceBench, bench_inference

    opts = InferenceBench(configs=configs, lengths=lengths, out=str(out), device=device,
                          modes=[m.strip() for m in modes.split(",") if m.strip()], window=window, repeats=repeats,
                          memory_limit_gb=memory_limit_gb, timeout_s=timeout_s, threads=threads)
    bench_inference(opts, command=command_line(), log=typer.echo)
    typer.echo(f"report: {out / 'report.md'}")


@bench_app.command()
def train(
    configs: str = typer.Option("cpu-transformer,cpu-mamba2,cpu-hnet-transformer,cpu-hnet-mamba2",
                                help="Comma-separated presets (the cpu-* presets are matched in FLOPs per base)"),
    out: Path = typer.Option(Path("runs/bench-train"), help="Output folder"),
    device: str = typer.Option("auto", help="auto, cpu or cuda (bf16 autocast on CUDA)"),
    seq_len: int = typer.Option(None, help="Window length (default: each preset's)"),
    batch: int = typer.Option(None, help="Micro-batch (default: each preset's)"),
    repeats: int = typer.Option(3, help="Timed steps (best is kept)"),
    profile: bool = typer.Option(True, help="Also profile one step by part (not with --compile)"),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile each Mamba-2/attention block, as pretrain does (compile time reported separately)."),
) -> None:
    """Training-step bases/s and MFU against a matmul peak measured now, with a profile by part.

    Example: dnahnet bench train --configs cpu-transformer,cpu-hnet-transformer --out runs/bench-train
    """
    from dnahnet.perf.train_profile import TrainBench, bench_train

    opts = TrainBench(configs=configs, out=str(out), device=device, seq_len=seq_len, batch=batch, repeats=repeats,
                      profile=profile, compile=compile_)
    bench_train(opts, command=command_line(), log=typer.echo)
    typer.echo(f"report: {out / 'report.md'}")


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
