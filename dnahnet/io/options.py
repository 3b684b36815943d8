"""One validator for the numeric options every command takes, so a bad value gets the same one-line error.

Typer/Click range errors print a usage block over several lines; these raise a
`DnahnetInputError` naming the option instead, before any work starts.
"""

from __future__ import annotations

from dnahnet.errors import DnahnetInputError


def check_int(value: int | None, flag: str, *, minimum: int = 1, allow: tuple[int, ...] = (), what: str = "") -> int | None:
    """`value` if it is None, in `allow`, or a whole number >= `minimum`; else a one-line input error."""
    if value is None or value in allow:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        bound = "a positive whole number" if minimum == 1 else f"a whole number >= {minimum}"
        extra = f" or {', '.join(str(a) for a in allow)}" if allow else ""
        raise DnahnetInputError(f"{flag}: expected {bound}{extra}{' (' + what + ')' if what else ''}, got {value!r}")
    return value


def check_ints(**values: tuple[int | None, int]) -> None:
    """check_int over several options at once: check_ints(**{"--batch-size": (batch_size, 1), "--window": (window, 0)})."""
    for flag, (value, minimum) in values.items():
        check_int(value, flag, minimum=minimum)
