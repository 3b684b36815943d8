"""Checks on the paths a command is given, made before any work starts.

`check_outputs` refuses an output that is an input (writing it would destroy the
input: outputs are renamed over their target), an output named twice (one would
silently replace the other) and an output file that is an existing folder. Every
command that writes files calls it with all of its inputs and outputs, so the
same mistake gets the same one-line error everywhere, before any compute.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Union

from dnahnet.errors import DnahnetInputError

PathLike = Union[str, os.PathLike]
# An entry is one path or several (repeatable options); None and "-" (stdout/stdin) are skipped.
Entry = Union[PathLike, Iterable[PathLike], None]

# Files that live beside an input and that an output must not replace either.
_COMPANIONS = (".fai", ".gzi", ".tbi", ".csi")
# Files of a checkpoint folder given as an input.
_CHECKPOINT_FILES = ("config.json", "model.safetensors", "train.json", "trainer.pt", "metrics.jsonl", "COMPLETE")


def _paths(entry: Entry) -> list[Path]:
    if entry is None:
        return []
    if isinstance(entry, (str, os.PathLike)):
        return [] if str(entry) in ("", "-") else [Path(entry)]
    return [p for e in entry for p in _paths(e)]


def _key(path: Path) -> tuple:
    """What identifies a file: (device, inode) when it exists (hard and symbolic links), else its resolved path."""
    try:
        st = path.stat()
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", str(path.resolve()))


def _input_files(flag: str, path: Path) -> list[tuple[str, Path]]:
    """An input and the files it implies: a folder's checkpoint files, a FASTA's or VCF's index files."""
    if path.is_dir():
        return [(flag, path)] + [(flag, path / name) for name in _CHECKPOINT_FILES if (path / name).exists()]
    return [(flag, path)] + [(f"{flag} index", Path(str(path) + s)) for s in _COMPANIONS if Path(str(path) + s).exists()]


def check_outputs(outputs: Mapping[str, Entry], inputs: Mapping[str, Entry] | None = None) -> None:
    """Refuse, in one line, an output equal to an input or to another output, or an output file that is a folder.

    `outputs` and `inputs` map an option name (`--out`, `--per-base`, `--out genes.tsv`)
    to a path, several paths or None. Output folders are given as the files the
    command writes inside them.
    """
    seen_inputs: dict[tuple, tuple[str, Path]] = {}
    for flag, entry in (inputs or {}).items():
        for path in _paths(entry):
            for name, file in _input_files(flag, path):
                seen_inputs.setdefault(_key(file), (name, file))
    seen_outputs: dict[tuple, tuple[str, Path]] = {}
    for flag, entry in outputs.items():
        for path in _paths(entry):
            if path.is_dir():
                raise DnahnetInputError(f"{flag}: this is an existing folder; give a file name", file=str(path))
            key = _key(path)
            if key in seen_inputs:
                name, file = seen_inputs[key]
                raise DnahnetInputError(
                    f"{flag} is the same file as the input {name} ({file}); writing it would destroy the input",
                    file=str(path),
                )
            if key in seen_outputs:
                raise DnahnetInputError(
                    f"{flag} is the same file as {seen_outputs[key][0]}; one output would replace the other",
                    file=str(path),
                )
            seen_outputs[key] = (flag, path)


def input_file(path: PathLike | None, flag: str, what: str = "file") -> Path | None:
    """`path` as an existing, readable file, or a one-line error saying which of those it is not."""
    if path is None:
        return None
    path = Path(path)
    if not path.exists():
        raise DnahnetInputError(f"{flag}: {what} not found", file=str(path))
    if path.is_dir():
        raise DnahnetInputError(f"{flag}: expected a {what}, got a folder", file=str(path))
    if not os.access(path, os.R_OK):
        raise DnahnetInputError(f"{flag}: {what} is not readable", file=str(path))
    return path


def check_command(
    outputs: Mapping[str, Entry],
    inputs: Mapping[str, Entry] | None = None,
    numbers: Mapping[str, tuple[int | None, int]] | None = None,
    files: Mapping[str, PathLike | None] | None = None,
) -> None:
    """The checks every writing command makes before any work: numeric options, input files, then inputs against outputs.

    `numbers` maps an option to (value, smallest allowed value), e.g. {"--batch-size": (batch_size, 1)};
    `files` maps an option to a path that must be an existing, readable file (not a folder).
    """
    from dnahnet.io.options import check_int

    for flag, (value, minimum) in (numbers or {}).items():
        check_int(value, flag, minimum=minimum)
    for flag, path in (files or {}).items():
        input_file(path, flag)
    check_outputs(outputs, inputs)

