"""The concepts discovered in a run's layer: per concept importance, prevalence, reliability and
name; the samples that express a concept; one sample's attribution to concepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image

from latentsight.discovery.dictionary import Dictionary
from latentsight.discovery.errors import DiscoveryError
from latentsight.discovery.importance import LinearHead, decompose_logit, linear_attributions
from latentsight.discovery.selection import KChoice

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import torch

    from latentsight.discovery.fidelity import Fidelity
    from latentsight.discovery.heatmaps import ConceptHeatmaps
    from latentsight.discovery.session import ConceptModel
    from latentsight.discovery.visualize import ConceptImage
    from latentsight.explain.maco import MacoSettings
    from latentsight.store.run import Run

IMPORTANCE_METHODS = ("auto", "gradient", "occlusion", "sobol")


@dataclass(frozen=True)
class Bank:
    """The dictionary of one group of samples (a class, or all) and its codes.

    ``codes`` covers every selected sample of the run (rows as ``ConceptBank.samples``), encoded
    with the group's fixed dictionary; ``rows`` are the group's own samples among them.
    """

    label: int | None  # the class, or None for a global dictionary
    rows: np.ndarray
    dictionary: Dictionary
    codes: np.ndarray
    first: int  # the concept id of the bank's first concept
    choice: KChoice | None  # the k sweep when k was "auto"

    def dominant(self) -> np.ndarray:
        """Per sample of the group (``rows``), the index of its largest code (-1: all zero)."""
        codes = self.codes[self.rows]
        return np.where(codes.max(axis=1) > 0, codes.argmax(axis=1), -1)


@dataclass(frozen=True)
class TopSamples:
    """The samples that express a concept most, strongest first."""

    concept: int
    ids: list[str]
    codes: np.ndarray
    run: Run = field(repr=False)

    def grid(self, columns: int = 8, size: int = 96) -> Image.Image:
        """The samples' stored renders tiled in a grid (``size`` px cells)."""
        images = [self.run.render(sample_id) for sample_id in self.ids]
        if not all(isinstance(image, Image.Image) for image in images):
            raise DiscoveryError("These samples' renders are text, not images: no image grid.")
        columns = max(1, min(columns, len(images)))
        rows = -(-len(images) // columns)
        sheet = Image.new("RGB", (columns * size, rows * size), "white")
        for i, image in enumerate(images):
            cell = image.convert("RGB").resize((size, size), Image.Resampling.NEAREST)
            sheet.paste(cell, ((i % columns) * size, (i // columns) * size))
        return sheet


@dataclass(frozen=True)
class SampleImportance:
    """One sample's class logit split into concept terms, the residual's term and the bias.

    For a method other than the linear head's closed form, ``residual`` is what the concept
    terms leave of the model's score and ``bias`` is 0, so ``logit`` is still the model's.
    """

    sample_id: str
    label: int
    table: pd.DataFrame  # per concept: concept, name, code, phi
    residual: float
    bias: float
    method: str = "closed_form"

    @property
    def logit(self) -> float:
        """The logit the parts sum to (the model's)."""
        return float(self.table["phi"].sum() + self.residual + self.bias)


class ConceptBank:
    """Concepts discovered in one layer of a run. Get one with ``run.discover_concepts(...)``."""

    def __init__(
        self,
        run: Run,
        layer: str,
        samples: pd.DataFrame,
        latents: np.ndarray,
        banks: list[Bank],
        table: pd.DataFrame,
        *,
        head: LinearHead | None,
        notes: list[str],
    ) -> None:
        self.run = run
        self.layer = layer
        self.samples = samples.reset_index(drop=True)
        self._latents = latents
        self.banks = banks
        self.table = table
        self.head = head
        self.notes = notes
        self.stored: Path | None = None  # the run's file holding this table, once saved
        self._model: ConceptModel | None = None

    def __repr__(self) -> str:
        return (
            f"ConceptBank(layer={self.layer!r}, concepts={len(self.table)}, "
            f"dictionaries={len(self.banks)}, samples={len(self.samples)})"
        )

    @property
    def sweeps(self) -> pd.DataFrame:
        """The k sweeps of the dictionaries fitted with k="auto", one block per class."""
        frames = [
            bank.choice.sweep.assign(**{"class": bank.label})
            for bank in self.banks
            if bank.choice is not None
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def _bank_of(self, concept: int) -> Bank:
        for bank in self.banks:
            if bank.first <= concept < bank.first + bank.dictionary.k:
                return bank
        raise DiscoveryError(
            f"No concept {concept}; this bank has concepts 0-{len(self.table) - 1}."
        )

    def top_samples(self, concept: int, n: int = 16) -> TopSamples:
        """The ``n`` samples of the concept's group with the largest codes for it."""
        bank = self._bank_of(concept)
        codes = bank.codes[bank.rows, concept - bank.first]
        order = np.argsort(-codes, kind="stable")[:n]
        ids = self.samples["id"].to_numpy()[bank.rows[order]]
        return TopSamples(concept, [str(i) for i in ids], codes[order], self.run)

    def visualize(
        self,
        concept: int,
        *,
        settings: MacoSettings | None = None,
        device: str | torch.device | None = None,
    ) -> ConceptImage:
        """A synthetic image (MACO) that maximises the concept's direction at the layer, with
        its transparency map; needs the model."""
        from latentsight.discovery.visualize import visualize_concept

        bank = self._bank_of(concept)
        direction = bank.dictionary.components[concept - bank.first]
        return visualize_concept(
            self.run, self.layer, concept, direction, settings=settings, device=device
        )

    def concept_model(self, what: str) -> ConceptModel:
        """The attached model, decoding this layer's concepts (an error when none is attached)."""
        from latentsight.discovery.session import ConceptModel

        if self._model is None:
            self._model = ConceptModel(self.run, self.layer, self.samples, what)
        return self._model

    def bank_for(self, label: int) -> Bank:
        """The dictionary that explains class ``label``: its own, or the global one."""
        banks = [b for b in self.banks if b.label in (label, None)]
        if not banks:
            raise DiscoveryError(
                f"No dictionary for class {label}: classes with one are "
                f"{[b.label for b in self.banks]}."
            )
        return banks[0]

    def attributions(
        self, bank: Bank, rows: np.ndarray, labels: np.ndarray, method: str = "auto"
    ) -> np.ndarray:
        """Attributions (len(rows) x k) of the class scores ``labels`` to a bank's concepts:
        closed form for a linear head, else through the model (``"auto"``: gradient x input)."""
        if method not in IMPORTANCE_METHODS:
            raise DiscoveryError(f"method={method!r}: give one of {list(IMPORTANCE_METHODS)}.")
        rows = np.asarray(rows)
        if self.head is not None:
            codes = bank.codes[rows]
            return linear_attributions(codes, bank.dictionary.components, self.head, labels, method)
        model = self.concept_model(f"Importance with method={method!r}")
        return model.attributions(bank, rows, labels, "gradient" if method == "auto" else method)

    def importance(
        self, sample_id: str, label: int | None = None, method: str = "auto"
    ) -> SampleImportance:
        """Concept attribution of a sample's logit for ``label`` (default: its prediction),
        with the dictionary of that class (per class) or the global one. ``method``: ``"auto"``
        (closed form for a linear head, else gradient x input), ``"gradient"``,
        ``"occlusion"`` or ``"sobol"``; all but a linear head's closed form run the model."""
        if self.head is None and self.run.project is None:
            raise DiscoveryError(
                "Importance needs the model: "
                + "; ".join(self.notes or ["attach the Project with run.attach(project)"])
                + "."
            )
        found = np.flatnonzero(self.samples["id"].to_numpy() == sample_id)
        if found.size == 0:
            raise DiscoveryError(f"No sample with id {sample_id!r} among the discovered samples.")
        row = int(found[0])
        if label is None:
            label = int(self.samples.loc[row, "prediction"])
        bank = self.bank_for(label)
        phi = self.attributions(bank, np.array([row]), np.array([label]), method)[0]
        if self.head is not None:
            parts = decompose_logit(
                self._latents[row : row + 1],
                bank.codes[row : row + 1],
                bank.dictionary.components,
                self.head,
                label,
            )
            bias = parts.bias
            residual = float(parts.logit[0] - phi.sum() - bias)
            used = "closed_form" if method == "auto" else method
        else:
            model = self.concept_model("Importance")
            ones = np.ones((1, bank.dictionary.k))
            score = float(model.scores(bank, np.array([row]), np.array([label]), ones)[0, 0])
            residual, bias = score - float(phi.sum()), 0.0
            used = "gradient" if method == "auto" else method
        ids = np.arange(bank.first, bank.first + bank.dictionary.k)
        table = pd.DataFrame(
            {
                "concept": ids,
                "name": self.table.set_index("concept").loc[ids, "name"].to_numpy(),
                "code": bank.codes[row],
                "phi": phi,
            }
        ).sort_values("phi", key=np.abs, ascending=False, kind="stable")
        return SampleImportance(
            sample_id, label, table.reset_index(drop=True), residual, bias, used
        )

    def heatmaps(self, sample_ids: str | Sequence[str], concept: int) -> ConceptHeatmaps:
        """Where ``concept`` sits in each sample: its code at every position of the layer's
        spatial map, upsampled to the input; re-runs the model on those samples."""
        from latentsight.discovery.heatmaps import concept_heatmaps

        return concept_heatmaps(self, sample_ids, concept)

    def fidelity(
        self,
        *,
        method: str = "auto",
        orders: int = 20,
        subsets: int = 32,
        samples: int | None = 500,
        seed: int = 0,
    ) -> Fidelity:
        """C-Deletion, C-Insertion and C-muFidelity of ``method``'s importance, each against
        ``orders`` random orders, on up to ``samples`` samples; a linear head's scores are exact
        without the model, other heads run it (see :mod:`latentsight.discovery.fidelity`)."""
        from latentsight.discovery.fidelity import concept_fidelity

        return concept_fidelity(
            self, method=method, orders=orders, subsets=subsets, samples=samples, seed=seed
        )
