"""One validator for the numeric options every command takes, so a bad value gets the same one-line error.

Typer/Click range errors print a usage block over several lines; these raise a
`DnahnetInputError` naming the option instead, before any work starts.
"""

from __future__ import annotations

import re

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


_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kKmMgG]?)\s*$")


def parse_count(text: str | None, what: str) -> int | None:
    """'2500000', '2.5M', '1e9', '50k' -> an integer; anything else is a one-line input error."""
    if text is None:
        return None
    match = _COUNT.match(text)
    if not match:
        raise DnahnetInputError(f"{what}: expected a whole number such as 2000000, 2M or 1e9, got {text!r}")
    value = float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2).lower()]
    if value < 1 or value != int(value):
        raise DnahnetInputError(f"{what}: expected a positive whole number, got {text!r}")
    return int(value)
