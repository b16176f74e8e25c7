"""Attribution on a small trained CNN: Grad-CAM against its textbook definition and Captum,
Integrated Gradients' completeness, targets, the cache, overlays, and the errors users meet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from captum.attr._utils.visualization import _normalize_attr
from conftest import TinyCNN, image_items
from PIL import Image
from torch import nn

import latentsight as ls
from latentsight.errors import ExplanationError, NotRecordedError
from latentsight.explain import AttributionSettings, normalize_map
from latentsight.explain.targets import Target, parse_target


def _train(model: nn.Module, items: list, steps: int = 60) -> nn.Module:
    inputs = torch.stack([x for x, _ in items])
    labels = torch.tensor([y for _, y in items])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    return model.eval()


def _planted_items(n: int, seed: int) -> list:
    """Dim noise with one 4 x 4 square whose colour (red, green, blue) is the class, placed at
    random; ``square_at`` finds it again."""
    generator = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        image = 0.2 * torch.rand(3, 12, 12, generator=generator)
        label = i % 3
        top, left = (int(v) for v in torch.randint(0, 9, (2,), generator=generator))
        image[label, top : top + 4, left : left + 4] += 0.8
        items.append((image, label))
    return items


def square_at(image: torch.Tensor, label: int) -> np.ndarray:
    """The planted square's pixels."""
    return (image[label] > 0.75).numpy()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A trained TinyCNN, its Project and its run (project attached)."""
    data = {"train": _planted_items(48, seed=1), "val": _planted_items(24, seed=2)}
    model = _train(TinyCNN(n_classes=3, seed=0), data["train"])
    project = ls.Project(
        model=model,
        data=data,
        loss=ls.losses.cross_entropy,
        name="tiny",
        classes=["plain", "square", "other"],
    )
    path = tmp_path_factory.mktemp("tiny") / "run"
    run = ls.analyze(project, path, progress=False, insights=False)
    return run, project, data


def _inputs(data, ids):
    return torch.stack([data[i.split("/")[0]][int(i.split("/")[1])][0] for i in ids])


def test_gradcam_is_the_textbook_definition_and_captums(tiny):
    run, project, data = tiny
    ids = [f"val/{i}" for i in range(12)]
    found = run.explain(ids, method="gradcam", layer="features.2", target="label", cache=False)
    model, x = project.model, _inputs(data, ids)
    labels = torch.tensor([data["val"][i][1] for i in range(12)])

    kept = {}
    handle = model.features[2].register_forward_hook(lambda _m, _i, out: kept.update(a=out))
    logits = model(x)
    handle.remove()
    activation = kept["a"]
    gradients = torch.autograd.grad(logits.gather(1, labels[:, None]).sum(), activation)[0]
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    by_hand = F.relu((weights * activation).sum(dim=1)).detach()
    upsampled = F.interpolate(by_hand[:, None], size=(12, 12), mode="bilinear")[:, 0]

    assert (by_hand.flatten(1).amax(1) > 0).all(), "a trained model gives non-empty maps"
    np.testing.assert_allclose(found.raw, by_hand.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(found.maps, upsampled.numpy(), rtol=1e-4, atol=1e-6)
    captum = LayerGradCam(model, model.features[2]).attribute(
        x, target=labels, relu_attributions=True
    )
    captum = LayerAttribution.interpolate(captum, (12, 12), interpolate_mode="bilinear")[:, 0]
    np.testing.assert_allclose(found.maps, captum.detach().numpy(), rtol=1e-4, atol=1e-6)
    assert found.classes.tolist() == labels.tolist()


def test_integrated_gradients_is_complete(tiny):
    run, project, data = tiny
    ids = [f"val/{i}" for i in range(6)]
    settings = AttributionSettings(steps=300, baseline="zero")
    found = run.explain(ids, method="ig", target=1, settings=settings, cache=False)
    x = _inputs(data, ids)
    with torch.no_grad():
        difference = (project.model(x) - project.model(torch.zeros_like(x)))[:, 1].numpy()
    sums = found.raw.reshape(len(ids), -1).sum(axis=1)
    np.testing.assert_allclose(sums, difference, rtol=0.01, atol=0.01 * np.abs(difference).max())
    np.testing.assert_allclose(found.maps.sum(axis=(1, 2)), sums, rtol=1e-5, atol=1e-5)
    assert found.method == "integrated_gradients" and found.classes.tolist() == [1] * 6


def test_every_method_gives_input_resolution_maps(tiny):
    """Evidence methods put their mass on the planted square; gradient magnitudes (saliency,
    SmoothGrad) measure sensitivity, which here is spread over the whole image, so they are only
    checked for shape."""
    run, _, data = tiny
    ids = [f"val/{i}" for i in range(9)]
    square = np.stack([square_at(*data["val"][i]) for i in range(9)])
    evidence = {
        "input_x_gradient",
        "integrated_gradients",
        "gradient_shap",
        "occlusion",
        "gradcam",
        "layercam",
    }
    for method in sorted(evidence | {"saliency", "smoothgrad"}):
        found = run.explain(ids, method=method, target="label", cache=False)
        assert found.maps.shape == (9, 12, 12) and np.isfinite(found.maps).all(), method
        if method in evidence:
            positive = np.maximum(found.maps, 0.0)
            inside = (positive * square).sum() / positive.sum()
            assert inside > 3 * square.mean(), f"{method}: {inside:.2f} of the mass on the square"


def test_targets_predicted_class_and_function_agree(tiny):
    run, _, _ = tiny
    ids = ["val/0", "val/1", "val/2"]
    predicted = run.explain(ids, method="saliency", cache=False)
    stored = run.samples.set_index("id").loc[ids, "prediction"].to_numpy()
    assert predicted.classes.tolist() == stored.tolist()
    by_index = [
        run.explain([i], method="saliency", target=int(c), cache=False)
        for i, c in zip(ids, stored, strict=True)
    ]
    np.testing.assert_allclose(
        predicted.maps, np.concatenate([e.maps for e in by_index]), rtol=1e-5
    )

    def logit_two(outputs):
        return outputs[:, 2]

    named = run.explain(ids, method="saliency", target="other", cache=False)
    assert named.classes.tolist() == [2, 2, 2]
    scored = run.explain(ids, method="saliency", target=logit_two, cache=False)
    indexed = run.explain(ids, method="saliency", target=2, cache=False)
    np.testing.assert_allclose(scored.maps, indexed.maps, rtol=1e-5)
    np.testing.assert_array_equal(named.maps, indexed.maps)
    with pytest.raises(ls.LatentsightError, match=r"The classes are 'plain', 'square', 'other'"):
        run.explain(ids, method="saliency", target="circle", cache=False)
    assert scored.target == "logit_two" and scored.classes.tolist() == [-1, -1, -1]


def test_a_class_whose_name_is_a_keyword_is_named_with_the_class_prefix():
    names = {0: "label", 1: "predicted", 2: "7"}
    assert parse_target("label", names) == Target("label")
    assert parse_target("class:label", names) == Target("class", class_index=0)
    assert parse_target("class:predicted", names) == Target("class", class_index=1)
    assert parse_target("class:7", names) == Target("class", class_index=2)  # the name first
    assert parse_target("class:1", names) == Target("class", class_index=1)
    with pytest.raises(ExplanationError, match=r"'class:NAME' for a class named"):
        parse_target("class:dog", names)


def test_results_are_cached_in_the_run_and_reused_without_the_model(tiny, tmp_path):
    run, _, _ = tiny
    ids = ["val/3", "val/4"]
    first = run.explain(ids, method="gradcam", layer="features.2")
    entries = run.explanations
    assert ((entries["method"] == "gradcam") & (entries["layer"] == "features.2")).any()
    reopened = ls.open_run(run.path)  # no model attached
    again = reopened.explain(ids, method="gradcam", layer="features.2")
    np.testing.assert_array_equal(again.maps, first.maps)
    np.testing.assert_array_equal(again.raw, first.raw)
    with pytest.raises(ExplanationError, match=r"open_run\(path, project=project\)"):
        reopened.explain(["val/5"], method="gradcam", layer="features.2")
    written = again.save(tmp_path / "png")
    assert [path.name for path in written] == [
        "val_3.gradcam@features.2.predicted.png",
        "val_4.gradcam@features.2.predicted.png",
    ]
    assert Image.open(written[0]).size[1] >= 128


def test_layer_all_sweeps_every_convolution(tiny, tmp_path):
    run, _, _ = tiny
    sweep = run.explain(["val/0", "val/1"], method="gradcam", layer="all", cache=False)
    assert list(sweep) == ["features.0", "features.2"]
    assert all(sweep[layer].maps.shape == (2, 12, 12) for layer in sweep)
    assert len(sweep.save(tmp_path)) == 2


def test_overlay_normalisation_is_captums():
    generator = np.random.default_rng(0)
    values = generator.standard_normal((16, 16)) ** 3
    for ours, theirs in (("absolute", "absolute_value"), ("positive", "positive"), ("all", "all")):
        np.testing.assert_allclose(
            normalize_map(values, ours), _normalize_attr(values, theirs, 2), rtol=1e-6, atol=1e-7
        )


def test_open_run_refuses_another_model(tiny):
    run, project, _ = tiny
    other = ls.Project(model=TinyCNN(n_classes=3, seed=5), data=project.data, loss=project.loss)
    with pytest.raises(ls.ProjectError, match=r"not the one .* captured with"):
        ls.open_run(run.path, project=other)
    assert ls.open_run(run.path, project=project).project is project


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (dict(ids=["val/0", "nope/1"]), NotRecordedError, r"not in this run.*'nope/1'"),
        (dict(ids=["val/0"], method="deeplift"), ExplanationError, r"Unknown explanation method"),
        (
            dict(ids=["val/0"], layer="fc"),
            ExplanationError,
            r"'fc' \(Linear\) does not output a spatial map",
        ),
        (dict(ids=["val/0"], layer="pool"), ExplanationError, r"does not output a spatial map"),
        (dict(ids=["val/0"], layer="feature.2"), ExplanationError, r"Near names: features.2"),
        (dict(ids=["val/0"], method="ig", layer="fc"), ExplanationError, r"takes no layer"),
        (dict(ids=["val/0"], target="guess"), ExplanationError, r"Unknown target"),
        (dict(ids=["val/0"], target=7), ExplanationError, r"has 3 classes"),
        (dict(ids=[]), ExplanationError, r"No sample ids"),
    ],
)
def test_bad_requests_say_what_to_fix(tiny, call, error, match):
    run, _, _ = tiny
    with pytest.raises(error, match=match):
        run.explain(cache=False, **call)


def test_a_target_function_must_return_one_score_per_sample(tiny):
    run, _, _ = tiny
    with pytest.raises(ExplanationError, match=r"one score per sample"):
        run.explain(["val/0", "val/1"], method="saliency", target=lambda outputs: outputs)


def test_activations_find_planted_blank_channels(tmp_path):
    model = TinyCNN(n_classes=3, seed=0)
    with torch.no_grad():
        first = model.features[0]
        first.weight[:3] = 0.0
        first.bias[:3] = 0.0
        first.bias[3:] = 1.0  # the other channels stay positive after ReLU
    data = {"train": image_items(8, seed=1, size=12)}
    project = ls.Project(model=model, data=data, loss=ls.losses.cross_entropy)
    run = ls.analyze(project, tmp_path / "run", progress=False, insights=False)
    maps = run.activations("train/0", "features.1")
    assert maps.maps.shape == (8, 12, 12)
    assert maps.blank.tolist() == [True] * 3 + [False] * 5
    assert maps.blank_fraction == pytest.approx(3 / 8)
    grid = maps.grid()
    assert grid.size[0] == 3 * 36 + 2 and grid.size[1] == 3 * 36 + 2  # 3 x 3 tiles, 1 px gaps
    sweep = run.activations("train/0")
    assert list(sweep) == ["features.1", "features.3"]
    assert sweep.sparsity.set_index("layer").loc["features.1", "blank"] == 3
    with pytest.raises(ExplanationError, match=r"not channel maps"):
        run.activations("train/0", "fc")
