"""INVERT's beam search over formulas, for all neurons of a layer together.

Definitions follow the reference implementation (Bykov et al., NeurIPS 2023; lapalap/invert):
the atomic formulas are every concept and its negation; the first beam is, per neuron, the B
atomic formulas of highest AUC whose share of positive samples lies in
``[min_fraction, max_fraction]`` (and strictly between 0 and 1); each of the ``L - 1`` steps
extends each beam formula by ``AND`` and by ``OR`` with every atomic formula, keeps the
candidates whose share of positives passes the same filter, and keeps the best B of the old beam
plus the candidates. Candidates are visited in the reference's order (beam formula, then atomic
formulas by decreasing ``2 |AUC - 0.5|``, then AND before OR) and sorted stably by AUC, so ties
resolve as there.

One deliberate difference: two candidates of a neuron with the same number of positives and the
same rank sum (hence the same AUC and p-value, e.g. ``A AND A`` and ``A``, or ``A AND B`` and
``B AND A``, or ``A AND NOT B`` and ``A`` when A and B never co-occur) are one explanation here;
the first in that order (the shorter or older one) is kept. The reference keeps such duplicates,
which then take beam slots from distinct formulas.

Vectorised: the rank sums of every ``beam formula AND concept`` of every neuron are one product
of (beam masks x ranks) with the concept matrix, taken over chunks of rows; ``AND NOT``, ``OR``
and ``OR NOT`` follow from it by inclusion-exclusion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latentsight.concepts.auc import Ranks, auc_from_sums, mann_whitney_p, rank_sums, twice_u
from latentsight.concepts.errors import ConceptsError
from latentsight.concepts.formulas import Formula, Literal, extend

AND, OR = 0, 1
_WORK_ELEMENTS = 8_000_000  # rows x (neurons x beam) per chunk: about 64 MB of float64


@dataclass(frozen=True)
class SearchSettings:
    """The beam search's settings; defaults as the reference's, with B = 5 and L = 3.

    Args:
        beam: formulas kept per neuron at each step (B).
        length: the longest formula, in literals (L).
        min_fraction: the smallest share of samples an explanation may cover.
        max_fraction: the largest share of samples an explanation may cover.
    """

    beam: int = 5
    length: int = 3
    min_fraction: float = 0.0
    max_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.beam < 1 or self.length < 1:
            raise ConceptsError(f"beam={self.beam}, length={self.length}: both must be >= 1.")
        if not 0.0 <= self.min_fraction <= self.max_fraction <= 1.0:
            raise ConceptsError(
                f"min_fraction={self.min_fraction}, max_fraction={self.max_fraction}: give "
                "0 <= min_fraction <= max_fraction <= 1."
            )


@dataclass(frozen=True)
class Beams:
    """Per neuron, the kept formulas (best first) as literal indices and operators, and scores.

    Literal ``j < C`` is concept ``j``, literal ``j >= C`` is ``NOT`` concept ``j - C``.
    """

    literals: np.ndarray  # M x B x L int
    ops: np.ndarray  # M x B x (L - 1) int (AND / OR)
    size: np.ndarray  # M x B int: literals in use (0: empty slot)
    sums: np.ndarray  # M x B float64: doubled rank sum of the positives
    counts: np.ndarray  # M x B int64: positives
    tested: np.ndarray  # M int: candidates scored that passed the share filter

    @property
    def valid(self) -> np.ndarray:
        """Slots that hold a formula."""
        return self.size > 0


@dataclass(frozen=True)
class SearchResult:
    """What the search found: formulas, AUC, p-value and share of positives per neuron and slot."""

    formulas: list[list[Formula]]  # per neuron, best first (fewer than B if few qualified)
    auc: np.ndarray  # M x B (NaN in empty slots)
    p: np.ndarray  # M x B
    fraction: np.ndarray  # M x B
    tested: np.ndarray  # M


def _fraction_ok(counts: np.ndarray, n: int, settings: SearchSettings) -> np.ndarray:
    share = counts / n
    return (
        (share >= settings.min_fraction)
        & (share <= settings.max_fraction)
        & (share > 0.0)
        & (share < 1.0)
    )


def _select(
    keys: np.ndarray,
    valid: np.ndarray,
    sums: np.ndarray,
    counts: np.ndarray,
    beam: int,
) -> list[list[int]]:
    """Per neuron, the first ``beam`` valid candidates by decreasing key (stable), one per
    distinct (count, rank sum)."""
    order = np.argsort(np.where(valid, -keys, np.inf), axis=1, kind="stable")
    chosen = []
    for k in range(keys.shape[0]):
        seen: set[tuple[int, float]] = set()
        picked: list[int] = []
        for index in order[k]:
            if not valid[k, index] or len(picked) == beam:
                break
            key = (int(counts[k, index]), float(sums[k, index]))
            if key not in seen:
                seen.add(key)
                picked.append(int(index))
        chosen.append(picked)
    return chosen


def _beam_masks(concepts: np.ndarray, beams: Beams, rows: slice) -> np.ndarray:
    """``rows x (M*B)`` masks of every beam formula, evaluated on a block of rows."""
    block = concepts[rows]
    literal_columns = np.concatenate([block, ~block], axis=1)
    literals = beams.literals.reshape(-1, beams.literals.shape[2])
    ops = beams.ops.reshape(-1, beams.ops.shape[2])
    size = beams.size.reshape(-1)
    masks = literal_columns[:, literals[:, 0]] & (size > 0)
    for step in range(1, literals.shape[1]):
        active = size > step
        if not active.any():
            break
        column = literal_columns[:, literals[:, step]]
        conjunction = active & (ops[:, step - 1] == AND)
        disjunction = active & (ops[:, step - 1] == OR)
        masks = np.where(conjunction, masks & column, np.where(disjunction, masks | column, masks))
    return masks


def _cross_sums(ranks: Ranks, concepts: np.ndarray, beams: Beams) -> tuple[np.ndarray, np.ndarray]:
    """Rank sums and counts of ``beam formula AND concept``: ``M x B x C`` each."""
    m, b = beams.size.shape
    c = concepts.shape[1]
    sums = np.zeros((m * b, c), dtype=np.float64)
    counts = np.zeros((m * b, c), dtype=np.float64)
    step = max(256, _WORK_ELEMENTS // max(m * b, 1))
    for start in range(0, ranks.n, step):
        rows = slice(start, start + step)
        masks = _beam_masks(concepts, beams, rows)
        block = concepts[rows]
        weighted = np.repeat(ranks.doubled[rows].astype(np.float64), b, axis=1) * masks
        sums += weighted.T @ block.astype(np.float64)
        counts += masks.T.astype(np.float32) @ block.astype(np.float32)
    return sums.reshape(m, b, c), counts.reshape(m, b, c).round().astype(np.int64)


def _extension_order(
    atomic_auc: np.ndarray, atomic_twice_u: np.ndarray, atomic_counts: np.ndarray, n: int
) -> np.ndarray:
    """Per neuron, the atomic literals in the reference's extension order: by decreasing AUC,
    then (stably) by decreasing ``2 |AUC - 0.5|``."""
    by_auc = np.argsort(-atomic_auc, axis=1, kind="stable")
    product = atomic_counts * (n - atomic_counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.abs(atomic_twice_u - product) / product
    spread = np.nan_to_num(spread, nan=-1.0)
    then = np.argsort(-np.take_along_axis(spread, by_auc, axis=1), axis=1, kind="stable")
    return np.take_along_axis(by_auc, then, axis=1)


def beam_search(
    ranks: Ranks,
    concepts: np.ndarray,
    names: tuple[str, ...],
    settings: SearchSettings = SearchSettings(),
) -> SearchResult:
    """Explain every neuron (a column of ``ranks``) by formulas over ``concepts`` (``N x C``)."""
    concepts = np.asarray(concepts, dtype=bool)
    if concepts.shape[0] != ranks.n:
        raise ConceptsError(
            f"{concepts.shape[0]} concept rows for {ranks.n} samples: they must be aligned."
        )
    n, m, c = ranks.n, ranks.m, concepts.shape[1]
    big_b, big_l = settings.beam, settings.length

    positive_sums, positive_counts = rank_sums(ranks, concepts)
    total = float(n) * (n + 1)
    atomic_sums = np.concatenate([positive_sums, total - positive_sums], axis=1)  # M x 2C
    atomic_counts = np.concatenate([positive_counts, n - positive_counts])  # 2C
    atomic_auc = auc_from_sums(atomic_sums, atomic_counts, n)
    atomic_twice_u = twice_u(atomic_sums, atomic_counts)
    counts_2d = np.broadcast_to(atomic_counts, (m, 2 * c))
    valid = np.broadcast_to(_fraction_ok(atomic_counts, n, settings), (m, 2 * c))
    picked = _select(atomic_auc, valid, atomic_sums, counts_2d, big_b)

    literals = np.zeros((m, big_b, big_l), dtype=np.int64)
    ops = np.zeros((m, big_b, max(big_l - 1, 1)), dtype=np.int64)
    size = np.zeros((m, big_b), dtype=np.int64)
    sums = np.zeros((m, big_b), dtype=np.float64)
    counts = np.zeros((m, big_b), dtype=np.int64)
    for k, row in enumerate(picked):
        for slot, j in enumerate(row):
            literals[k, slot, 0], size[k, slot] = j, 1
            sums[k, slot], counts[k, slot] = atomic_sums[k, j], atomic_counts[j]
    tested = valid.sum(axis=1).astype(np.int64)
    beams = Beams(literals, ops, size, sums, counts, tested)

    order = _extension_order(atomic_auc, atomic_twice_u, counts_2d, n)
    for _ in range(1, big_l):
        beams = _extend(ranks, concepts, beams, order, atomic_sums, atomic_counts, settings)
    return _result(beams, ranks, names)


def _extend(
    ranks: Ranks,
    concepts: np.ndarray,
    beams: Beams,
    order: np.ndarray,
    atomic_sums: np.ndarray,
    atomic_counts: np.ndarray,
    settings: SearchSettings,
) -> Beams:
    """One step: every beam formula AND / OR every atomic formula, then the best B kept."""
    n = ranks.n
    m, big_b = beams.size.shape
    cross_sums, cross_counts = _cross_sums(ranks, concepts, beams)
    beam_sums, beam_counts = beams.sums[..., None], beams.counts[..., None]
    and_sums = np.concatenate([cross_sums, beam_sums - cross_sums], axis=2)  # M x B x 2C
    and_counts = np.concatenate([cross_counts, beam_counts - cross_counts], axis=2)
    or_sums = beam_sums + atomic_sums[:, None, :] - and_sums
    or_counts = beam_counts + atomic_counts[None, None, :] - and_counts
    candidate_sums = np.stack([and_sums, or_sums], axis=3)  # M x B x 2C x 2
    candidate_counts = np.stack([and_counts, or_counts], axis=3)
    index = order[:, None, :, None]
    candidate_sums = np.take_along_axis(candidate_sums, index, axis=2).reshape(m, -1)
    candidate_counts = np.take_along_axis(candidate_counts, index, axis=2).reshape(m, -1)
    parent_valid = np.repeat(beams.valid, candidate_sums.shape[1] // big_b, axis=1)
    candidate_valid = parent_valid & _fraction_ok(candidate_counts, n, settings)

    all_sums = np.concatenate([beams.sums, candidate_sums], axis=1)
    all_counts = np.concatenate([beams.counts, candidate_counts], axis=1)
    all_valid = np.concatenate([beams.valid, candidate_valid], axis=1)
    picked = _select(auc_from_sums(all_sums, all_counts, n), all_valid, all_sums, all_counts, big_b)

    literals = np.zeros_like(beams.literals)
    ops = np.zeros_like(beams.ops)
    size = np.zeros_like(beams.size)
    per_parent = order.shape[1] * 2  # atomic literals x (AND, OR)
    for k, row in enumerate(picked):
        for slot, index in enumerate(row):
            if index < big_b:
                parent, literal, op = index, None, None
            else:
                parent, rest = divmod(index - big_b, per_parent)
                position, op = divmod(rest, 2)
                literal = order[k, position]
            literals[k, slot] = beams.literals[k, parent]
            ops[k, slot] = beams.ops[k, parent]
            size[k, slot] = beams.size[k, parent]
            if literal is not None:
                literals[k, slot, size[k, slot]] = literal
                ops[k, slot, size[k, slot] - 1] = op
                size[k, slot] += 1
    rows = np.arange(m)[:, None]
    picked_index = np.array([row + [0] * (big_b - len(row)) for row in picked])
    filled = size > 0
    return Beams(
        literals,
        ops,
        size,
        np.where(filled, all_sums[rows, picked_index], 0.0),
        np.where(filled, all_counts[rows, picked_index], 0),
        beams.tested + candidate_valid.sum(axis=1),
    )


def _formula(literals: np.ndarray, ops: np.ndarray, size: int, names: tuple[str, ...]) -> Formula:
    c = len(names)
    atoms = [Literal(names[j % c], negated=bool(j >= c)) for j in literals[:size]]
    formula: Formula = atoms[0]
    for op, atom in zip(ops[: size - 1], atoms[1:], strict=True):
        formula = extend(formula, "AND" if op == AND else "OR", atom)
    return formula


def _result(beams: Beams, ranks: Ranks, names: tuple[str, ...]) -> SearchResult:
    filled = beams.valid
    formulas = [
        [
            _formula(beams.literals[k, s], beams.ops[k, s], int(beams.size[k, s]), names)
            for s in range(beams.size.shape[1])
            if filled[k, s]
        ]
        for k in range(beams.size.shape[0])
    ]
    counts = np.where(filled, beams.counts, 0)
    auc = np.where(filled, auc_from_sums(beams.sums, counts, ranks.n), np.nan)
    p = np.where(filled, mann_whitney_p(beams.sums, counts, ranks.tie_term, ranks.n), np.nan)
    return SearchResult(formulas, auc, p, np.where(filled, counts / ranks.n, np.nan), beams.tested)
