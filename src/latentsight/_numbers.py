"""How p and q values are written for people, in the terminal and in the report."""

from __future__ import annotations

UNDERFLOW = "< 1e-300"


def probability_text(value: float, spec: str = ".2g") -> str:
    """``value`` in ``spec``; a p or q value is never exactly 0, so a 0 (one that underflowed
    double precision) is written as the bound it is below."""
    return UNDERFLOW if value == 0 else format(value, spec)
