"""Every command's --help example is a command line that parses: right command, known flags, valid values."""

import shlex

import pytest
import typer.main

from dnahnet_cli.main import app


def _commands(group, prefix: tuple[str, ...] = ()):
    if hasattr(group, "commands"):  # a group (typer ships its own click)
        for name, sub in group.commands.items():
            yield from _commands(sub, prefix + (name,))
    else:
        yield prefix, group


COMMANDS = dict(_commands(typer.main.get_command(app)))


def _examples(command) -> list[str]:
    """Command lines after "Example:"/"Examples:" in the help text (several split by "; " or " or ")."""
    import re

    text = " ".join((command.help or "").split())
    out = []
    for piece in re.split(r"Examples?: ", text)[1:]:
        piece = re.split(r" Examples?:", piece)[0]
        piece = re.sub(r" \([^)]*\)\.?$", "", piece.strip())  # a closing remark in parentheses
        out += [line.strip().rstrip(".") for line in re.split(r"; | or (?=dnahnet |torchrun )", piece) if line.strip()]
    return out


def test_every_command_has_an_example():
    missing = [" ".join(path) for path, command in COMMANDS.items() if not _examples(command)]
    assert not missing, f"commands without an example in --help: {missing}"


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=lambda p: " ".join(p))
def test_help_examples_name_their_command_and_parse(path):
    command = COMMANDS[path]
    for example in _examples(command):
        words = shlex.split(example.split(" > ")[0].split(" | ")[0])
        if words[0] in ("torchrun", "python", "OMP_NUM_THREADS=1"):
            words = words[words.index("dnahnet_cli") + 1:] if "dnahnet_cli" in words else words
        else:
            assert words[0] == "dnahnet", example
            words = words[1:]
        assert tuple(words[: len(path)]) == path, f"example of `{' '.join(path)}` runs another command: {example}"
        # Parsing converts every value (ints, choices, paths) and rejects unknown flags.
        command.make_context(" ".join(path), list(words[len(path):]))
