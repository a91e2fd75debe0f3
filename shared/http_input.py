"""Numbers from URLs (paths and queries), parsed strictly and with bounds.

Python's ``int()`` and ``float()`` take far more than a URL should: any Unicode
digit (``int("٣")`` is 3, ``"²".isdigit()`` is true but ``int("²")`` raises),
underscores, surrounding spaces, ``nan`` and ``inf``, and ``int()`` raises
``ValueError`` past 4,300 digits. A handler that calls them on what a client
sent turns a hostile URL into a 500. These accept only ASCII numbers of a
sane length within the bounds given, and answer None for anything else, so
the caller chooses the 4xx.
"""

import math
import re

# Longer than any number a URL of ours needs (an int64 has 19 digits), short
# enough that nothing downstream ever sees thousands of digits.
MAX_DIGITS = 32
DIGITS = f"[0-9]{{1,{MAX_DIGITS}}}"
INTEGER = re.compile(f"-?{DIGITS}")
# JSON Schema numbers as clients (and schemathesis) write them: 5, 0.5, .5, 1e-05, +2.
NUMBER = re.compile(rf"[+-]?(?:{DIGITS}(?:\.[0-9]{{0,{MAX_DIGITS}}})?|\.{DIGITS})(?:[eE][+-]?[0-9]{{1,4}})?")


def bounded_int(raw: str | None, minimum: int, maximum: int) -> int | None:
    """``raw`` as an integer in ``[minimum, maximum]``, or None (absent, not a plain integer, out of range)."""
    if raw is None or not INTEGER.fullmatch(raw):
        return None
    value = int(raw)
    return value if minimum <= value <= maximum else None


def bounded_float(raw: str | None, minimum: float, maximum: float) -> float | None:
    """``raw`` as a finite number in ``[minimum, maximum]``, or None."""
    if raw is None or not NUMBER.fullmatch(raw):
        return None
    value = float(raw)
    return value if math.isfinite(value) and minimum <= value <= maximum else None
