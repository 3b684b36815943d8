"""The `dnahnet` command: a thin Typer app over the dnahnet library.

Each command lives in its own module under `cli/` and registers itself here.
User mistakes (`DnahnetInputError`) become one line on stderr and exit code 2;
anything else is a bug and keeps its traceback (exit 1).
"""

from __future__ import annotations

import importlib
import sys

import typer

from dnahnet_cli import invocation
from dnahnet.errors import DnahnetInputError, report_input_error
from dnahnet.perf.allocator import keep_freed_memory

app = typer.Typer(
    name="dnahnet",
    help="Tokenizer-free DNA language models with H-Net dynamic chunking.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def _print_version(value: bool) -> None:
    if value:
        from dnahnet import __version__

        typer.echo(f"dnahnet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Tokenizer-free DNA language models with H-Net dynamic chunking."""


# Command modules, each with `register(app)`; a module missing here is simply not offered.
COMMAND_MODULES = [
    "dnahnet_cli.model_commands",
    "dnahnet_cli.pretrain",
    "dnahnet_cli.data_commands",
    "dnahnet_cli.score",
    "dnahnet_cli.boundaries",
    "dnahnet_cli.annotate",
    "dnahnet_cli.compare",
    "dnahnet_cli.demo",
    "dnahnet_cli.bench",
    "dnahnet_cli.zeroshot",
    "dnahnet_cli.view",
    "dnahnet_cli.embed",
    "dnahnet_cli.finetune",
]

for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # only skip modules that are not there at all
        if exc.name != _name:
            raise
        continue
    _module.register(app)


# `dnahnet --help` lists commands under these headings, in this order.
HELP_PANELS = {
    "Train": ["pretrain", "finetune", "compare"],
    "Inference": ["score", "variants", "boundaries", "generate", "embed", "predict", "view"],
    "Analysis": ["annotate", "zeroshot", "baseline"],
    "Benchmarks": ["bench", "benchmark"],
    "Data and models": ["demo", "data", "presets", "info", "flops", "convert", "export"],
}


def _tidy_help(typer_app: typer.Typer) -> None:
    """Group the commands under `HELP_PANELS`; help text is plain (brackets such as "[assay]" are not markup)."""
    panel_of = {name: panel for panel, names in HELP_PANELS.items() for name in names}
    typer_app.rich_markup_mode = "markdown"
    for info in typer_app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        info.rich_help_panel = panel_of.get(name, info.rich_help_panel)
    for group in typer_app.registered_groups:
        group.rich_help_panel = panel_of.get(group.name, group.rich_help_panel)
        group.typer_instance.rich_markup_mode = "markdown"
    order = {panel: i for i, panel in enumerate(HELP_PANELS)}
    typer_app.registered_commands.sort(key=lambda info: order.get(info.rich_help_panel, len(order)))
    typer_app.registered_groups.sort(key=lambda info: order.get(info.rich_help_panel, len(order)))


def _no_flag_metavar() -> None:
    """Flags take no value, so their help shows none (typer would print "<bool>"). A typer without the hook
    (other versions than the one pinned here; seen on a GPU machine's image) keeps its own help: cosmetic."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None:
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich


_tidy_help(app)
_no_flag_metavar()


def main(argv: list[str] | None = None) -> int:
    """Run the app; return the exit code (usage errors exit 2 through Typer itself)."""
    invocation.record(argv)
    try:
        app(args=argv, prog_name="dnahnet")
    except DnahnetInputError as exc:
        return report_input_error(exc, "dnahnet")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def entry() -> None:
    from dnahnet.io.atomic import terminate_cleanly

    keep_freed_memory()
    terminate_cleanly()  # SIGTERM unwinds like Ctrl-C: temporaries are removed, final outputs untouched
    sys.exit(main())
