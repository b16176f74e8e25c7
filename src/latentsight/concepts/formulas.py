"""Logical formulas over concepts (a concept, its negation, AND, OR), as structured objects.

Formulas are built the way the beam search builds them: a literal, then extended on the right by
``AND`` or ``OR`` with one more literal. A run of the same operator is flattened
(``(A AND B) AND C`` is ``A AND B AND C``), so the text needs parentheses only where the operator
changes: ``(A OR B) AND NOT C``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal as Op

import numpy as np


@dataclass(frozen=True)
class Literal:
    """One concept, or its negation."""

    concept: str
    negated: bool = False

    def __str__(self) -> str:
        return f"NOT {self.concept}" if self.negated else self.concept

    @property
    def literals(self) -> tuple[Literal, ...]:
        """The literals of the formula, left to right."""
        return (self,)

    def evaluate(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The boolean mask of samples where the formula holds."""
        mask = np.asarray(columns[self.concept], dtype=bool)
        return ~mask if self.negated else mask


@dataclass(frozen=True)
class Compound:
    """An ``AND`` or an ``OR`` of two or more sub-formulas, in the order they were added."""

    op: Op["AND", "OR"]
    parts: tuple[Formula, ...]

    def __str__(self) -> str:
        texts = [f"({part})" if isinstance(part, Compound) else str(part) for part in self.parts]
        return f" {self.op} ".join(texts)

    @property
    def literals(self) -> tuple[Literal, ...]:
        """The literals of the formula, left to right."""
        return tuple(literal for part in self.parts for literal in part.literals)

    def evaluate(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The boolean mask of samples where the formula holds."""
        masks = [part.evaluate(columns) for part in self.parts]
        combine = np.logical_and if self.op == "AND" else np.logical_or
        return combine.reduce(masks)


Formula = Literal | Compound


def extend(formula: Formula, op: Op["AND", "OR"], literal: Literal) -> Formula:
    """``formula op literal``, flattening a run of the same operator."""
    if isinstance(formula, Compound) and formula.op == op:
        return Compound(op, (*formula.parts, literal))
    return Compound(op, (formula, literal))


def concepts_of(formula: Formula) -> set[str]:
    """The concepts a formula mentions, negated or not."""
    return {literal.concept for literal in formula.literals}


def length(formula: Formula) -> int:
    """The number of literals: the formula length L of the search."""
    return len(formula.literals)
