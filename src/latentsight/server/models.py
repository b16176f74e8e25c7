"""The JSON the API answers with: typed, so that the OpenAPI schema documents every field."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ColumnOut(BaseModel):
    """A column the map can be coloured by."""

    name: str
    kind: str = Field(description="'number' (float32 values) or 'category' (uint16 codes)")
    group: str = Field(description="analysis, outcome, loss, metadata or score")
    categories: list[str] = Field(description="category labels, in code order")
    low: float | None = Field(description="2nd percentile of a number column")
    high: float | None = Field(description="98th percentile of a number column")


class RunOut(BaseModel):
    """What the run holds and how it was analysed."""

    name: str
    path: str
    n_samples: int
    subsets: list[str]
    task: str
    layer: str
    view: str
    bounds: list[float] = Field(description="map extent: min x, min y, max x, max y")
    columns: list[ColumnOut]
    value_columns: list[str] = Field(description="columns averaged in statistics and trends")
    metadata_columns: list[str]
    classes: list[str] = Field(
        description="the class names by class index, empty when the Project gave none; the "
        "class_columns (and each sample's target and prediction) hold indices into it"
    )
    class_columns: list[str] = Field(
        description="the columns whose values index classes (empty without class names)"
    )
    metrics: list[dict[str, Any]] = Field(description="headline figures per subset, then 'all'")
    insights: int
    has_renders: bool
    has_explanations: bool
    concept_tables: list[str]
    provenance: dict[str, Any]


class SubsetMix(BaseModel):
    subset: str
    inside: int
    outside: int


class ValueComparison(BaseModel):
    column: str
    label: str
    inside: float | None
    outside: float | None


class EnrichmentOut(BaseModel):
    column: str
    text: str
    p_value: float
    effect: float | None


class SelectionOut(BaseModel):
    """A selection against the rest of the run."""

    size: int
    rest: int
    subsets: list[SubsetMix]
    values: list[ValueComparison]
    enriched: list[EnrichmentOut]


class EvidenceOut(BaseModel):
    detector: str
    effect: float | None
    effect_name: str
    p_value: float | None
    q_value: float | None
    n: int
    counts: dict[str, int]
    details: dict[str, Any]


class InsightSummary(BaseModel):
    """One ranked insight, without its population."""

    index: int
    kind: str
    title: str
    size: int
    score: float | None
    q_value: float | None
    description: str
    action: str


class InsightDetail(InsightSummary):
    """An insight with its evidence, its population (rows) and a gallery of its samples."""

    evidence: list[EvidenceOut]
    merged: list[str]
    rows: list[int]
    gallery: list[str] = Field(description="ids of the population's highest-loss samples")


class NeighbourOut(BaseModel):
    id: str
    row: int
    distance: float
    loss: float | None
    target: Any


class ExplanationOut(BaseModel):
    """A cached explanation map of a sample (GET /api/sample/heatmap draws it)."""

    method: str
    layer: str | None = Field(description="the layer of a layer method, else null")
    target: str = Field(description="'predicted', 'label' or 'class-k'")


class ExplainOptions(BaseModel):
    """What the dashboard can explain on demand (it needs the model for that)."""

    available: bool = Field(description="whether the server has the model")
    note: str = Field(description="what the server can do, or how to enable more")
    methods: list[str]
    layered: list[str] = Field(description="the methods that take a layer")
    layers: list[str] = Field(description="the layers they can explain at (convolutions)")
    default_layer: str | None
    targets: list[str]


class ExplainIn(BaseModel):
    """One sample to explain with a method (at a layer, for layer methods) for a target."""

    id: str = Field(max_length=1000, description="the sample id")
    method: str = Field(max_length=100, description="one of GET /api/explain's methods")
    layer: str | None = Field(default=None, max_length=1000, description="for layer methods")
    target: str = Field(default="predicted", max_length=100)


class SampleOut(BaseModel):
    """Everything known about one sample."""

    id: str
    row: int
    subset: str
    target: Any
    prediction: Any
    confidence: float | None
    correct: bool | None
    probabilities: list[float | None] | None
    values: dict[str, Any] = Field(description="loss, its components, metrics")
    metadata: dict[str, Any]
    scores: dict[str, Any] = Field(description="per-sample detector scores")
    cluster: int | None
    map: list[float | None]
    render: str | None = Field(description="'image', 'text', or null when none was stored")
    text: str | None
    neighbours: list[NeighbourOut]
    explanations: list[ExplanationOut]


class TrendGroup(BaseModel):
    subset: str
    x: list[Any]
    mean: list[float | None]
    n: list[int]


class TrendOut(BaseModel):
    """The mean of a value against a metadata column, per subset and for all samples."""

    column: str
    value: str
    value_label: str
    kind: str
    labels: list[Any]
    groups: list[TrendGroup]


class ConceptTableInfo(BaseModel):
    name: str
    title: str
    rows: int
    columns: list[str]


class ConceptTableOut(BaseModel):
    name: str
    title: str
    total: int
    offset: int
    columns: list[str]
    rows: list[list[Any]]
