"""The concept vocabulary: one boolean column per concept, from metadata, labels and annotations.

Categorical metadata (text, booleans, integers with few values) gives ``"column == value"``;
other numeric metadata is cut into quantile bins (``"size < 4.6"``, ``"4.6 <= size < 7.5"``,
``"size >= 10.2"``) or at the user's thresholds; class labels give ``"label == k"``; a user's
annotation frame gives one concept per boolean column. A concept true on no sample or on every
sample, or equal to (or the complement of) an earlier one, says nothing new and is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import pandas as pd

from latentsight.concepts.errors import ConceptsError

METADATA = "metadata"
LABEL = "label"
ANNOTATION = "annotation"


@dataclass(frozen=True)
class Vocabulary:
    """Concept names, their sources, and the ``N x C`` boolean matrix (rows follow the samples)."""

    names: tuple[str, ...]
    sources: tuple[str, ...]
    matrix: np.ndarray
    dropped: dict[str, str] = field(default_factory=dict)  # concept or column -> why

    def __len__(self) -> int:
        return len(self.names)

    def columns(self) -> dict[str, np.ndarray]:
        """``{concept: mask}``, what :meth:`Formula.evaluate` reads."""
        return {name: self.matrix[:, i] for i, name in enumerate(self.names)}

    def index(self, name: str) -> int:
        """The column of a concept, or an error listing near names."""
        if name in self.names:
            return self.names.index(name)
        near = [n for n in self.names if n.split(" ")[0] == name.split(" ")[0]][:8]
        hint = f" Concepts of that column: {near}." if near else ""
        raise ConceptsError(
            f"No concept named {name!r} in the vocabulary ({len(self.names)} concepts).{hint}"
        )

    def without(self, source: str) -> Vocabulary:
        """The vocabulary less every concept of one source (e.g. the class labels)."""
        keep = [i for i, s in enumerate(self.sources) if s != source]
        return Vocabulary(
            tuple(self.names[i] for i in keep),
            tuple(self.sources[i] for i in keep),
            self.matrix[:, keep],
            dict(self.dropped),
        )


def _number(value: float) -> str:
    return f"{value:.3g}"


def _integral(present: pd.Series) -> bool:
    """Whether every (non-missing) value of a numeric column is a whole number."""
    return bool(np.all(np.mod(present.to_numpy(dtype=np.float64), 1.0) == 0))


def _is_categorical(values: pd.Series, max_levels: int) -> bool:
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return True
    present = values.dropna()
    return _integral(present) and present.nunique() <= max_levels


def _categorical(column: str, values: pd.Series) -> list[tuple[str, np.ndarray]]:
    present = values.dropna()
    levels = sorted(present.unique(), key=lambda v: (str(type(v)), v))
    return [(f"{column} == {level}", (values == level).to_numpy(dtype=bool)) for level in levels]


def _binned(column: str, values: pd.Series, cuts: Sequence[float]) -> list[tuple[str, np.ndarray]]:
    numbers = values.to_numpy(dtype=np.float64)
    cuts = np.unique(np.asarray(cuts, dtype=np.float64))
    bins = np.searchsorted(cuts, numbers, side="right")
    present = ~np.isnan(numbers)
    texts = [f"{column} < {_number(cuts[0])}"]
    texts += [f"{_number(lo)} <= {column} < {_number(hi)}" for lo, hi in pairwise(cuts)]
    texts.append(f"{column} >= {_number(cuts[-1])}")
    return [(text, present & (bins == b)) for b, text in enumerate(texts)]


def _metadata_concepts(
    samples: pd.DataFrame,
    columns: Sequence[str],
    bins: int,
    thresholds: Mapping[str, Sequence[float]],
    max_levels: int,
    max_categories: int,
    dropped: dict[str, str],
) -> list[tuple[str, np.ndarray]]:
    concepts: list[tuple[str, np.ndarray]] = []
    for column in columns:
        values = samples[column]
        if column in thresholds:
            concepts += _binned(column, values, thresholds[column])
        elif _is_categorical(values, max_levels):
            if values.nunique() > max_categories:
                dropped[column] = (
                    f"{values.nunique()} distinct values (more than max_categories="
                    f"{max_categories}); give a few concepts of it as annotations instead"
                )
                continue
            concepts += _categorical(column, values)
        else:
            quantiles = np.linspace(0.0, 1.0, bins + 1)[1:-1]
            cuts = np.nanquantile(values.to_numpy(dtype=np.float64), quantiles)
            concepts += _binned(column, values, cuts)
    return concepts


def _not_class_labels(targets: pd.Series, max_categories: int) -> str | None:
    """Why a target column holds no class labels (regression, multi-label, boxes...), or None."""
    if not pd.api.types.is_numeric_dtype(targets):
        return "the targets are not one number per sample (multi-output or structured)"
    present = targets.dropna()
    if not _integral(present):
        return "the targets are continuous (regression), not class labels"
    if present.nunique() > max_categories:
        return f"the targets take more than {max_categories} values"
    return None


def _label_concepts(
    targets: pd.Series,
    class_names: Sequence[str] | Mapping[int, str] | None,
    max_categories: int,
    dropped: dict[str, str],
) -> list[tuple[str, np.ndarray]]:
    """``label == k`` for every class present; unlabelled samples are in none of them."""
    reason = _not_class_labels(targets, max_categories)
    if reason is not None:
        dropped["label"] = reason
        return []
    names = dict(enumerate(class_names)) if isinstance(class_names, Sequence) else class_names or {}
    concepts = []
    for label in sorted(targets.dropna().unique()):
        name = names.get(int(label), int(label))
        concepts.append((f"label == {name}", targets.eq(label).fillna(False).to_numpy(dtype=bool)))
    return concepts


def _annotation_concepts(annotations: pd.DataFrame, ids: pd.Series) -> list[tuple[str, np.ndarray]]:
    frame = annotations.set_index("id") if "id" in annotations.columns else annotations
    missing = ~ids.isin(frame.index)
    if missing.any():
        raise ConceptsError(
            f"The concept annotations lack {int(missing.sum())} of the {len(ids)} samples (e.g. "
            f"{ids[missing].iloc[0]!r}): give one row per sample id, as an 'id' column or as the "
            "index, with False where a concept is absent."
        )
    frame = frame.loc[ids.to_numpy()]
    concepts = []
    for column in frame.columns:
        values = frame[column]
        if (
            not (pd.api.types.is_bool_dtype(values) or set(values.dropna().unique()) <= {0, 1})
            or values.isna().any()
        ):
            raise ConceptsError(
                f"Annotation column {column!r} is not boolean (dtype {values.dtype}, or it has "
                "missing values): give True/False per sample."
            )
        concepts.append((str(column), values.to_numpy(dtype=bool)))
    return concepts


def _distinct(
    concepts: list[tuple[str, np.ndarray, str]], dropped: dict[str, str]
) -> list[tuple[str, np.ndarray, str]]:
    """Drop constant concepts and those equal to, or the complement of, an earlier one."""
    seen: dict[bytes, str] = {}
    kept = []
    for name, mask, source in concepts:
        count = int(mask.sum())
        if count in (0, len(mask)):
            dropped[name] = "true on no sample" if count == 0 else "true on every sample"
            continue
        key, complement = np.packbits(mask).tobytes(), np.packbits(~mask).tobytes()
        if key in seen or complement in seen:
            relation = "the same samples as" if key in seen else "the complement of"
            dropped[name] = f"{relation} {seen.get(key) or seen[complement]!r}"
            continue
        seen[key] = name
        kept.append((name, mask, source))
    return kept


def build_vocabulary(
    samples: pd.DataFrame,
    *,
    metadata_columns: Sequence[str] = (),
    labels: bool = True,
    class_names: Sequence[str] | Mapping[int, str] | None = None,
    annotations: pd.DataFrame | None = None,
    bins: int = 4,
    thresholds: Mapping[str, Sequence[float]] | None = None,
    max_levels: int = 12,
    max_categories: int = 50,
) -> Vocabulary:
    """The concepts of a set of samples, as a boolean matrix aligned with ``samples``' rows.

    Args:
        samples: the samples table (an ``id`` column, ``target`` for labels, metadata columns).
        metadata_columns: the metadata columns to turn into concepts.
        labels: add ``"label == k"`` for every class present.
        class_names: names of the classes, by class index, used in the label concepts' text.
        annotations: user concepts, one boolean column each, rows by sample id.
        bins: quantile bins per numeric metadata column.
        thresholds: ``{column: [cut, ...]}``: bins at these cuts instead of quantiles.
        max_levels: an integer column with at most this many values is categorical.
        max_categories: a categorical column with more values is skipped (noted in ``dropped``).
    """
    if bins < 2:
        raise ConceptsError(f"bins={bins}: give at least 2 bins per numeric column.")
    thresholds = dict(thresholds or {})
    unknown = [c for c in [*metadata_columns, *thresholds] if c not in samples.columns]
    if unknown:
        raise ConceptsError(
            f"No metadata column {unknown[0]!r} in the samples table; its columns are "
            f"{list(samples.columns)}."
        )
    dropped: dict[str, str] = {}
    found: list[tuple[str, np.ndarray, str]] = [
        (name, mask, METADATA)
        for name, mask in _metadata_concepts(
            samples, metadata_columns, bins, thresholds, max_levels, max_categories, dropped
        )
    ]
    if labels and "target" in samples.columns:
        found += [
            (n, m, LABEL)
            for n, m in _label_concepts(samples["target"], class_names, max_categories, dropped)
        ]
    if annotations is not None:
        found += [
            (n, m, ANNOTATION)
            for n, m in _annotation_concepts(annotations, samples["id"].reset_index(drop=True))
        ]
    kept = _distinct(found, dropped)
    if not kept:
        raise ConceptsError(
            "No usable concept: the samples have no metadata, labels or annotations that vary. "
            "Give metadata to the Project, or concept annotations (a DataFrame of booleans)."
        )
    matrix = np.column_stack([mask for _, mask, _ in kept])
    return Vocabulary(tuple(n for n, _, _ in kept), tuple(s for _, _, s in kept), matrix, dropped)
