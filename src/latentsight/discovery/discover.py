"""Discovering the concepts of a run's layer: dictionaries per class (or global), k, importance
through the linear head, prevalence, reliability and INVERT names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from latentsight._progress import progress_bars
from latentsight.concepts import ConceptSettings, Vocabulary, build_vocabulary
from latentsight.concepts.errors import ConceptsError
from latentsight.discovery.dictionary import fit_dictionary
from latentsight.discovery.errors import DiscoveryError
from latentsight.discovery.importance import LinearHead, find_linear_head
from latentsight.discovery.naming import name_concepts
from latentsight.discovery.result import Bank, ConceptBank
from latentsight.discovery.selection import choose_k, default_ks
from latentsight.discovery.session import fill_table_importance
from latentsight.discovery.store import save_bank

if TYPE_CHECKING:
    from latentsight.store.run import Run

CLASS_TASKS = ("classification", "binary")  # tasks with one class per sample


@dataclass(frozen=True)
class DiscoverySettings:
    """How concepts are discovered and named.

    Args:
        method: ``"auto"`` (NMF, Semi-NMF for signed latents; above 2e7 values both fit on a
            seeded subsample of rows and encode the rest), ``"nmf"``, ``"minibatch_nmf"``,
            ``"semi_nmf"`` or ``"sae"`` (a TopK sparse autoencoder).
        by: per class, group samples by their ``"prediction"`` (as CRAFT) or ``"target"``.
        ks: the ks swept when k="auto" (default: 2 to 12, fewer for small classes).
        min_stability: the split-half stability a chosen k needs.
        max_gain: an extra concept must lower the relative error by less than this.
        seed: seeds every fit and split.
        naming_scope: name a concept by its codes over ``"all"`` samples (the direction's
            meaning in the whole data) or over its ``"group"``'s samples only.
        naming_labels: put the class labels in the naming vocabulary (default: only for a
            global dictionary, since a class's concepts all lie in that class).
        min_auc: a concept is named when its best formula is significant and reaches this AUC.
        concepts: INVERT's search settings (beam, length, share of positives, alpha, bins).
        max_fit_samples: fit each dictionary (and its k sweep) on at most this many of its
            group's samples, drawn with the seed, then encode every sample (None: all).
    """

    method: str = "auto"
    by: Literal["prediction", "target"] = "prediction"
    ks: Sequence[int] | None = None
    min_stability: float = 0.8
    max_gain: float = 0.02
    seed: int = 0
    naming_scope: Literal["all", "group"] = "all"
    naming_labels: bool | None = None
    min_auc: float = 0.8
    concepts: ConceptSettings = field(default_factory=ConceptSettings)
    max_fit_samples: int | None = None


def _select_rows(samples: pd.DataFrame, subset: str | Sequence[str] | None) -> np.ndarray:
    if subset is None:
        return np.arange(len(samples))
    wanted = [subset] if isinstance(subset, str) else list(subset)
    unknown = sorted(set(wanted) - set(samples["subset"]))
    if unknown:
        raise DiscoveryError(
            f"No subset {unknown[0]!r} in this run; its subsets are "
            f"{sorted(samples['subset'].unique())}."
        )
    return np.flatnonzero(samples["subset"].isin(wanted).to_numpy())


def _per_class(per_class: bool | None, task: str) -> bool:
    """Whether to fit one dictionary per class: by default, where the run's task has classes."""
    if per_class is None:
        return task in CLASS_TASKS
    if per_class and task not in CLASS_TASKS:
        raise DiscoveryError(
            f"per_class makes one dictionary per class, and this run's task is {task!r}, which "
            "gives no single class per sample: use per_class=False (on the command line, "
            "--global)."
        )
    return per_class


def _groups(samples: pd.DataFrame, per_class: bool, by: str) -> list[tuple[int | None, np.ndarray]]:
    if not per_class:
        return [(None, np.arange(len(samples)))]
    if by not in ("prediction", "target") or by not in samples or samples[by].isna().all():
        raise DiscoveryError(
            f"per_class groups samples by {by!r}, which this run did not record: give "
            "by='prediction' or by='target', or per_class=False."
        )
    values = samples[by].to_numpy()
    if any(np.ndim(value) > 0 for value in values):
        raise DiscoveryError(
            f"per_class makes one dictionary per class, and this run's {by!r} holds several "
            "values per sample (multilabel or vector targets): use per_class=False (on the "
            "command line, --global)."
        )
    labels = sorted({int(v) for v in values[~pd.isna(values)]})
    return [(label, np.flatnonzero(values == label)) for label in labels]


def _fit_bank(
    latents: np.ndarray,
    label: int | None,
    rows: np.ndarray,
    k: int | Literal["auto"],
    settings: DiscoverySettings,
    first: int,
) -> Bank:
    fit_rows = rows
    if settings.max_fit_samples is not None and len(rows) > settings.max_fit_samples:
        rng = np.random.default_rng(settings.seed)
        fit_rows = np.sort(rng.choice(rows, settings.max_fit_samples, replace=False))
    group = latents[fit_rows]
    choice = None
    if k == "auto" and not settings.ks and len(default_ks(*group.shape)) < 2:
        k = min(2, group.shape[1])  # too few samples or dimensions to compare two ks
    if k == "auto":
        ks = settings.ks or default_ks(*group.shape)
        choice = choose_k(
            group,
            ks,
            method=settings.method,
            seed=settings.seed,
            min_stability=settings.min_stability,
            max_gain=settings.max_gain,
        )
        k = choice.k
    _, dictionary = fit_dictionary(group, int(k), method=settings.method, seed=settings.seed)
    return Bank(label, rows, dictionary, dictionary.encode(latents), first, choice)


def _concept_rows(
    bank: Bank, samples: pd.DataFrame, latents: np.ndarray, head: LinearHead | None
) -> list[dict]:
    codes = bank.codes[bank.rows]
    group = samples.iloc[bank.rows]
    dominant = bank.dominant()
    phi = None
    one_class = "prediction" in group and len(group) and np.ndim(group["prediction"].iloc[0]) == 0
    if head is not None and (bank.label is not None or one_class):
        # importance is a concept's share of a class logit: none without one class to read
        labels = (
            np.full(len(bank.rows), bank.label)
            if bank.label is not None
            else group["prediction"].to_numpy(dtype=int)
        )
        projections = head.weight[labels] @ bank.dictionary.components.T  # n x k
        phi = codes * projections
    group_loss = float(group["loss"].mean()) if "loss" in group else np.nan
    rows = []
    for i in range(bank.dictionary.k):
        mask = dominant == i
        where = group[mask]
        loss = float(where["loss"].mean()) if "loss" in where and mask.any() else np.nan
        rows.append(
            {
                "concept": bank.first + i,
                "class": bank.label,
                "index": i,
                "importance": float(np.abs(phi[:, i]).mean()) if phi is not None else np.nan,
                "signed_importance": float(phi[:, i].mean()) if phi is not None else np.nan,
                "prevalence": float(mask.mean()),
                "samples": int(mask.sum()),
                "accuracy": float(where["correct"].mean())
                if "correct" in where and mask.any()
                else np.nan,
                "mean_loss": loss,
                "loss_ratio": loss / group_loss if group_loss > 0 else np.nan,
                "mean_code": float(codes[:, i].mean()),
            }
        )
    return rows


def _head(run: Run, layer: str, dim: int, notes: list[str]) -> LinearHead | None:
    project = run.project
    if project is None:
        notes.append(
            "no model: attach the Project (run.attach(project); on the command line, --project "
            "module:project) to get importance from the linear head that reads the layer"
        )
        return None
    found = find_linear_head(project.resolve_model(), layer, dim)
    if isinstance(found, str):
        notes.append(found)
        return None
    return _class_logits(found, run.manifest, notes)


def _class_logits(head: LinearHead, manifest: dict, notes: list[str]) -> LinearHead | None:
    """The head with one row per class logit, as importance reads it, or None (with a note)
    when its outputs are not the run's class logits (a regression head, a second head). A
    binary head's one logit is class 1's log-odds; class 0's is its negative."""
    task, outputs = manifest["task"], head.weight.shape[0]
    if task == "binary" and outputs == 1:
        return LinearHead(
            head.name, np.concatenate([-head.weight, head.weight]), np.array([-1, 1]) * head.bias
        )
    if task == "classification" and outputs == manifest.get("n_classes"):
        return head
    if task in CLASS_TASKS:
        notes.append(
            f"head {head.name!r} gives {outputs} outputs, not the logits of the run's classes: "
            "importance reads the head that makes the logits; record that head's input"
        )
    else:
        notes.append(
            f"importance is a concept's share of a class logit, and this run's task is {task!r}: "
            "the table has none"
        )
    return None


def discover_concepts(
    run: Run,
    layer: str,
    *,
    per_class: bool | None = None,
    k: int | Literal["auto"] = "auto",
    settings: DiscoverySettings | None = None,
    subset: str | Sequence[str] | None = None,
    class_names: Sequence[str] | Mapping[int, str] | None = None,
    progress: bool = False,
    save: bool = True,
    importance_through_model: bool = True,
) -> ConceptBank:
    """Discover the concepts of a layer from its stored pooled latents; see :class:`ConceptBank`.

    ``per_class`` fits one dictionary per class (by default where the run's task has one class
    per sample: classification, binary) or, False, one for all samples.

    With ``save`` the table is kept in the run (``<run>/concepts/``) for the report and the
    dashboard (``.stored`` is its file), except where it has no importance (no model) and the
    stored one has: that one is kept and a note says how to replace it. Where no linear head
    reads the layer and the model is attached, the table's importance comes from a pass
    through the model, unless ``importance_through_model`` is False."""
    settings = settings or DiscoverySettings()
    if settings.naming_scope not in ("all", "group"):
        raise DiscoveryError(f"naming_scope={settings.naming_scope!r}: give 'all' or 'group'.")
    if k != "auto" and (not isinstance(k, int) or k < 1):
        raise DiscoveryError(f"k={k!r}: give a number of concepts >= 1, or 'auto'.")
    per_class = _per_class(per_class, run.manifest["task"])
    latents_all = run.latent(layer)
    samples = run.samples
    rows = _select_rows(samples, subset)
    samples = samples.iloc[rows].reset_index(drop=True)
    latents = np.asarray(latents_all[rows], dtype=np.float64)
    groups = _groups(samples, per_class, settings.by)
    notes: list[str] = []
    head = _head(run, layer, latents.shape[1], notes)
    names_by_class = (
        dict(enumerate(class_names))
        if isinstance(class_names, Sequence)
        else run.class_names
        if class_names is None
        else class_names
    )
    labels = settings.naming_labels if settings.naming_labels is not None else not per_class
    try:
        vocabulary: Vocabulary | None = build_vocabulary(
            samples,
            metadata_columns=list(settings.concepts.metadata or run.manifest["metadata_columns"]),
            labels=labels,
            class_names=names_by_class,
            bins=settings.concepts.bins,
            thresholds=settings.concepts.thresholds,
        )
    except ConceptsError as error:
        vocabulary = None
        notes.append(f"concepts are left unnamed: {error}")
    banks: list[Bank] = []
    records: list[dict] = []
    with progress_bars(progress) as reporter:
        reporter.start("dictionaries", len(groups))
        for label, group_rows in groups:
            smallest = 2 * max(settings.ks or [2]) if k == "auto" else int(k)
            if len(group_rows) < max(smallest, 10):
                notes.append(f"class {label}: {len(group_rows)} samples, too few; skipped")
                reporter.advance("dictionaries")
                continue
            first = sum(b.dictionary.k for b in banks)
            bank = _fit_bank(latents, label, group_rows, k, settings, first)
            banks.append(bank)
            scope = np.arange(len(samples)) if settings.naming_scope == "all" else group_rows
            named = name_concepts(
                bank.codes[scope],
                samples.iloc[scope].reset_index(drop=True),
                _restrict(vocabulary, scope) if vocabulary is not None else None,
                settings=settings.concepts,
                min_auc=settings.min_auc,
            )
            for row, name in zip(
                _concept_rows(bank, samples, latents, head), named.to_dict("records"), strict=True
            ):
                records.append({**row, **name})
            reporter.advance("dictionaries")
    if not banks:
        raise DiscoveryError(
            "No class has enough samples to discover concepts: " + "; ".join(notes) + "."
        )
    table = pd.DataFrame(records)
    if names_by_class:
        table.insert(2, "class_name", table["class"].map(lambda c: names_by_class.get(c, c)))
    concepts = ConceptBank(run, layer, samples, latents, banks, table, head=head, notes=notes)
    if head is None and run.project is not None and importance_through_model:
        if run.manifest["task"] == "classification":
            fill_table_importance(concepts)
        else:
            notes.append(
                "no importance through the model: it reads a class logit, one of several, and "
                f"this run's task is {run.manifest['task']!r}"
            )
    if save:
        concepts.stored = save_bank(
            concepts, settings=settings, k=k, per_class=per_class, subset=subset
        )
    return concepts


def _restrict(vocabulary: Vocabulary, rows: np.ndarray) -> Vocabulary:
    """The vocabulary on some of its rows (concepts constant there score AUC 0.5)."""
    return Vocabulary(
        vocabulary.names, vocabulary.sources, vocabulary.matrix[rows], vocabulary.dropped
    )
