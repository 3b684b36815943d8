"""The CLI's help tweaks depend on typer internals; a typer without them must still load the CLI."""

from typer.core import TyperOption

from dnahnet_cli import main as cli_main


def test_cli_loads_with_a_typer_that_lacks_the_flag_help_hook(monkeypatch):
    """A GPU machine's image had a typer without `TyperOption.display_type_rich`: importing the CLI failed there."""
    for cls in TyperOption.__mro__:
        if "display_type_rich" in vars(cls):
            monkeypatch.delattr(cls, "display_type_rich")
    cli_main._no_flag_metavar()  # returns: the help keeps typer's own metavar
    assert not hasattr(TyperOption, "display_type_rich")
