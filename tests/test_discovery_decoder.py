"""Concept importance through any head: the decoder with its residual reproduces the model, a
planted driving concept ranks first by every method, Sobol agrees with the closed form, the
batched path equals a per-sample loop, and heatmaps put a planted concept where it is."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from torch import nn

from latentsight.discovery import fit_dictionary
from latentsight.discovery.attribution import (
    AttributionSettings,
    concept_attributions,
    masked_scores,
)
from latentsight.discovery.decoder import ConceptDecoder
from latentsight.discovery.errors import DiscoveryError
from latentsight.discovery.fidelity import auc, order_masks
from latentsight.discovery.heatmaps import concept_maps, spatial_map
from latentsight.discovery.session import probe
from latentsight.discovery.sobol import linear_total, sobol_design

D, K = 24, 4


def _directions(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    directions = rng.random((K, D)) * (rng.random((K, D)) < 0.5)
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


def _maps(n: int = 200, side: int = 4, seed: int = 0):
    """Feature maps (n x D x side x side) whose every position is a sparse non-negative
    combination of the planted directions (plus a little noise); the position codes."""
    rng = np.random.default_rng(seed)
    codes = rng.exponential(1.0, (n, side * side, K)) * (rng.random((n, side * side, K)) < 0.3)
    flat = codes @ _directions(seed) + rng.normal(0.0, 0.01, (n, side * side, D))
    maps = np.maximum(flat, 0.0).transpose(0, 2, 1).reshape(n, D, side, side)
    return torch.tensor(maps, dtype=torch.float32), codes


def _latents(n: int = 400, seed: int = 0) -> torch.Tensor:
    maps, _ = _maps(n, side=1, seed=seed)
    return maps.flatten(1)


class OnMaps(nn.Module):
    """A map passed through (layer "body"), global average pooled, then a head."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.body = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.body(x)).flatten(1))


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, 16), nn.ReLU(), nn.Linear(16, 3))


def _driven(mlp: bool) -> nn.Module:
    """A head whose class 1 reads planted concept 2 only (through a ReLU layer when ``mlp``)."""
    direction = torch.tensor(_directions()[2], dtype=torch.float32)
    if not mlp:
        head = nn.Linear(D, 2)
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
            head.weight[1] = 3.0 * direction
        return head
    head = nn.Sequential(nn.Linear(D, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        head[0].weight.copy_(direction.repeat(4, 1) * torch.arange(1.0, 5.0)[:, None])
        head[0].bias.copy_(torch.tensor([0.0, -0.2, -0.4, -0.6]))
        head[2].weight.zero_()
        head[2].bias.zero_()
        head[2].weight[1] = 1.0
    return head


def _fit(latents: torch.Tensor, k: int = K):
    return fit_dictionary(latents.numpy(), k)


@pytest.mark.parametrize("mlp", [False, True], ids=["linear", "mlp"])
@pytest.mark.parametrize("spatial", [False, True], ids=["vector", "map"])
def test_the_decoder_with_its_residual_reproduces_the_models_logits(mlp, spatial):
    head = _mlp() if mlp else nn.Linear(D, 3)
    if spatial:
        inputs, _ = _maps(60)
        model, layer = OnMaps(head), "body"
        latents = inputs.mean(dim=(2, 3))
    else:
        inputs = latents = _latents(60)
        model, layer = nn.Sequential(nn.Identity(), head), "1:input"
    codes, dictionary = _assert_decodes_the_model(model, layer, inputs, latents)
    assert dictionary.error > 0.1  # too few concepts: a real residual
    labels = torch.as_tensor(np.arange(60) % 3)
    with torch.no_grad():
        expected = model(inputs)[torch.arange(60), labels].double()
        # the reconstruction alone (CRAFT drops the residual) gives other logits
        alone = head(torch.tensor(codes @ dictionary.components, dtype=torch.float32))
        alone = alone[torch.arange(60), labels].double()
    assert (alone - expected).abs().max() > 0.01


def _assert_decodes_the_model(model: nn.Module, layer: str, inputs, live) -> tuple:
    """With every mask at 1 the decoder at ``layer`` gives the model's logits; at 0, others.
    Returns the codes and dictionary of two concepts fitted on ``live``."""
    codes, dictionary = _fit(live, 2)
    decoder = ConceptDecoder(model, layer, dictionary.components)
    labels = np.arange(60) % 3
    with torch.no_grad():
        expected = model(inputs)[torch.arange(60), torch.as_tensor(labels)].double()
        found = decoder.scores(inputs, codes, torch.ones(60, 1, 2), labels)[:, 0].double()
        dropped = decoder.scores(inputs, codes, torch.zeros(60, 1, 2), labels)[:, 0].double()
    assert torch.allclose(found, expected, atol=1e-5)
    assert (found - dropped).abs().max() > 0.01  # the masks reach the concepts
    return codes, dictionary


class KeywordHead(nn.Module):
    """A head that takes its input by keyword only, as many transformer blocks do."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = _mlp()

    def forward(self, *, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)


class CallsByKeyword(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = KeywordHead()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(features=x * 2.0)


def test_the_input_of_a_module_called_by_keyword_is_probed_and_decoded():
    inputs = _latents(60)
    model = CallsByKeyword()
    live, _ = probe(model, inputs, "head:input")
    assert torch.equal(live, inputs * 2.0)
    _assert_decodes_the_model(model, "head:input", inputs, live)


class Hidden(NamedTuple):
    hidden: torch.Tensor
    total: torch.Tensor


class ReturnsPair(nn.Module):
    """A block returning hidden states first, then more: as a tuple, a named tuple or a dict
    (the forms transformer blocks return)."""

    def __init__(self, form: str = "tuple") -> None:
        super().__init__()
        self.form = form

    def forward(self, x: torch.Tensor) -> Any:
        hidden, total = x * 2.0, x.sum(dim=1)
        if self.form == "dict":
            return {"hidden": hidden, "total": total}
        return Hidden(hidden, total) if self.form == "named" else (hidden, total)


class TakesPair(nn.Module):
    """A head given one tuple ``(features, scale)`` as its only argument."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = _mlp()

    def forward(self, pair: tuple[torch.Tensor, float]) -> torch.Tensor:
        features, scale = pair
        return self.mlp(features * scale)


class PairsEverywhere(nn.Module):
    """A block whose output is a tuple feeding a head whose input is a tuple; ``factor`` is a
    module that neither takes nor returns a tensor."""

    def __init__(self, form: str = "tuple") -> None:
        super().__init__()
        self.block = ReturnsPair(form)
        self.head = TakesPair()
        self.factor = nn.Module()
        self.factor.forward = lambda value: value * 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        readers = {"dict": lambda: out["hidden"], "named": lambda: out.hidden}
        hidden = readers.get(self.block.form, lambda: out[0])()
        return self.head((hidden, self.factor(3.0)))


@pytest.mark.parametrize(
    ("layer", "form"),
    [("block", "tuple"), ("block", "named"), ("block", "dict"), ("head:input", "tuple")],
)
def test_a_tuple_output_or_input_keeps_its_form_when_decoded(layer, form):
    inputs = _latents(60)
    model = PairsEverywhere(form)
    live, _ = probe(model, inputs, layer)
    assert torch.equal(live, inputs * 2.0)
    _assert_decodes_the_model(model, layer, inputs, live)


@pytest.mark.parametrize("layer", ["factor", "factor:input"])
def test_decoding_a_layer_without_a_tensor_names_the_layer(layer):
    inputs = _latents(8)
    decoder = ConceptDecoder(PairsEverywhere(), layer, np.eye(2, D))
    with pytest.raises(DiscoveryError, match=rf"Layer '{layer}' has no tensor to record"):
        decoder.scores(inputs, np.ones((8, 2)), torch.ones(8, 1, 2), np.zeros(8, dtype=int))


@pytest.mark.parametrize("mlp", [False, True], ids=["linear", "mlp"])
def test_every_method_ranks_a_planted_driving_concept_first(mlp):
    latents = _latents()
    codes, dictionary = _fit(latents)
    planted = int(np.argmax(dictionary.components @ _directions()[2]))
    model = nn.Sequential(nn.Identity(), _driven(mlp))
    decoder = ConceptDecoder(model, "1:input", dictionary.components)
    labels = np.ones(len(codes), dtype=int)
    for method in ("gradient", "occlusion", "sobol"):
        phi = concept_attributions(decoder, lambda rows: latents[rows], codes, labels, method)
        ranked = np.argsort(-np.abs(phi).mean(axis=0))
        assert ranked[0] == planted, (method, np.abs(phi).mean(axis=0))


def test_sobol_agrees_with_the_closed_form_and_gradient_is_exact_on_a_linear_head():
    latents = _latents(200)
    codes, dictionary = _fit(latents)
    head = nn.Linear(D, 3)
    decoder = ConceptDecoder(nn.Sequential(nn.Identity(), head), "1:input", dictionary.components)
    labels = np.arange(200) % 3
    projections = head.weight.detach().double().numpy()[labels] @ dictionary.components.T
    inputs = lambda rows: latents[rows]  # noqa: E731
    big = AttributionSettings(design=1024)
    sobol = concept_attributions(decoder, inputs, codes, labels, "sobol", big)
    assert np.abs(sobol - linear_total(codes, projections)).max() < 0.05
    for method in ("gradient", "occlusion"):
        phi = concept_attributions(decoder, inputs, codes, labels, method)
        assert np.allclose(phi, codes * projections, atol=1e-5)


@pytest.mark.parametrize("spatial", [False, True], ids=["vector", "map"])
def test_the_batched_path_equals_a_per_sample_loop(spatial):
    if spatial:
        inputs, _ = _maps(24)
        model, layer, latents = OnMaps(_mlp()), "body", inputs.mean(dim=(2, 3))
    else:
        inputs = latents = _latents(24)
        model, layer = nn.Sequential(nn.Identity(), _mlp()), "1:input"
    codes, dictionary = _fit(latents)
    decoder = ConceptDecoder(model, layer, dictionary.components)
    labels = np.arange(24) % 3
    for method in ("gradient", "occlusion", "sobol"):
        batched = concept_attributions(decoder, lambda r: inputs[r], codes, labels, method)
        looped = np.concatenate(
            [
                concept_attributions(
                    decoder,
                    lambda _r, i=i: inputs[i : i + 1],
                    codes[i : i + 1],
                    labels[i : i + 1],
                    method,
                )
                for i in range(24)
            ]
        )
        assert np.allclose(batched, looped, atol=1e-5), method


def test_folding_the_dictionary_through_a_linear_module_changes_nothing():
    latents = _latents(40)
    codes, dictionary = _fit(latents)
    model = nn.Sequential(nn.Identity(), _mlp())
    folded = ConceptDecoder(model, "1.0:input", dictionary.components)  # the input of a Linear
    plain = ConceptDecoder(model, "1:input", dictionary.components)  # of the Sequential head
    assert folded.folded and not plain.folded
    labels = np.arange(40) % 3
    gradients = [
        concept_attributions(decoder, lambda r: latents[r], codes, labels, "gradient")
        for decoder in (folded, plain)
    ]
    assert np.allclose(*gradients, atol=1e-5)
    masks = sobol_design(K, 16)
    scores = [
        masked_scores(decoder, lambda r: latents[r], codes, labels, masks, batch_size=8)
        for decoder in (folded, plain)
    ]
    assert np.allclose(*scores, atol=1e-5)


def test_the_sobol_design_mixes_one_column_per_block():
    design = sobol_design(3, 8, seed=1)
    a, b, mixed = design[:8], design[8:16], design[16:].reshape(3, 8, 3)
    for i in range(3):
        assert np.array_equal(mixed[i][:, i], b[:, i])
        assert np.array_equal(np.delete(mixed[i], i, 1), np.delete(a, i, 1))
    with pytest.raises(DiscoveryError, match="power of two"):
        sobol_design(3, 12)


def test_heatmaps_put_a_planted_concept_where_it_is_and_average_to_its_code():
    maps, planted = _maps(30, side=4)
    dictionary = fit_dictionary(maps.mean(dim=(2, 3)).numpy(), K)[1]
    dictionary = type(dictionary)(_directions(), dictionary.method, 0.0)  # the planted directions
    column = 1
    codes = dictionary.encode(maps.mean(dim=(2, 3)).numpy())[:, column]
    same, scale = concept_maps(maps, dictionary.components, column, codes, (4, 4))
    truth = planted[:, :, column].reshape(30, 4, 4)
    # at the layer's resolution the map is the planted position codes
    assert np.abs(same - truth).max() < 0.05 * truth.max()
    present = codes > 0.2
    assert present.sum() > 20 and np.allclose(scale[present], 1.0, atol=0.02)
    big, _ = concept_maps(maps, dictionary.components, column, codes, (16, 16))
    assert big.shape == (30, 16, 16) and (big >= 0).all()
    assert np.allclose(big.mean(axis=(1, 2)), codes, rtol=1e-9, atol=1e-12)
    hottest = np.unravel_index(truth.reshape(30, -1).argmax(1), (4, 4))
    found = np.unravel_index(big.reshape(30, -1).argmax(1), (16, 16))
    assert np.mean((found[0] // 4 == hottest[0]) & (found[1] // 4 == hottest[1])) > 0.8


def test_the_spatial_map_behind_a_pooled_vector_is_found():
    maps, _ = _maps(5)
    model = OnMaps(_mlp())
    live, outputs = probe(model, maps, "head:input")
    assert spatial_map(live, outputs, "head:input")[0] == "body"
    hidden = nn.Sequential(nn.Identity(), _mlp())
    live, outputs = probe(hidden, _latents(5), "1.2:input")
    with pytest.raises(DiscoveryError, match="not the global average of a spatial map"):
        spatial_map(live, outputs, "1.2:input")


def test_deletion_and_insertion_masks_follow_the_order():
    order = np.array([[2, 0, 1]])
    deletion = order_masks(order, insert=False)[0]
    assert deletion.tolist() == [[1, 1, 1], [1, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert (order_masks(order, insert=True)[0] == 1.0 - deletion).all()
    assert auc(np.linspace(0.0, 1.0, 11)) == pytest.approx(0.5)
