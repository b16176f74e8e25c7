"""Explanations of the trained demo CNN, scored against the shapes data's known geometry and
planted shortcut: localisation, the spurious background, faithfulness, sanity, filters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import mannwhitneyu, wilcoxon

import latentsight as ls
from latentsight.demo.run import GROUND_TRUTH
from latentsight.demo.shapes import SHAPES
from latentsight.explain import FilterSettings, MacoSettings

LAST_CONV = "features.2.0"


def real_channel_means(run, channels: list[int], n: int) -> torch.Tensor:
    """Spatial means of ``features.2``'s ``channels`` on the first ``n`` validation images."""
    model = run.project.model
    images = torch.stack([run.project.data["val"][i][0] for i in range(n)])
    kept = {}
    handle = model.features[2].register_forward_hook(lambda _m, _i, out: kept.update(a=out))
    with torch.no_grad():
        model(images)
    handle.remove()
    return kept["a"][:, channels].mean(dim=(2, 3))


@pytest.fixture(scope="module")
def demo(attached_shapes_run):
    """The shapes run with its Project attached, and its samples joined with the ground truth."""
    run = attached_shapes_run
    truth = pd.read_parquet(run.path / GROUND_TRUTH)
    return run, run.samples.merge(truth, on="id")


def _boxes(rows: pd.DataFrame, side: int = 32) -> np.ndarray:
    """Each object's square box: centre (x, y), half side = its radius."""
    yy, xx = np.mgrid[0:side, 0:side]
    return np.stack(
        [
            (np.abs(xx - x) <= r) & (np.abs(yy - y) <= r)
            for x, y, r in zip(rows["x"], rows["y"], rows["size"], strict=True)
        ]
    )


def _share(maps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return (maps * mask).sum(axis=(1, 2)) / np.maximum(maps.sum(axis=(1, 2)), 1e-12)


def test_gradcam_mass_sits_on_the_object(demo, record_property):
    run, samples = demo
    rows = samples[(samples["subset"] == "val") & samples["correct"]].head(300)
    found = run.explain(list(rows["id"]), method="gradcam", layer=LAST_CONV, cache=False)
    boxes = _boxes(rows)
    inside, area = _share(found.maps, boxes), boxes.mean(axis=(1, 2))
    peaks = found.maps.reshape(len(rows), -1).argmax(axis=1)
    pointing = boxes.reshape(len(rows), -1)[np.arange(len(rows)), peaks].mean()
    record_property("pointing_game", float(pointing))
    record_property("mass_in_box", float(inside.mean()))
    record_property("box_share", float(area.mean()))
    assert inside.mean() > 1.5 * area.mean()
    assert pointing > 0.6 and pointing > 2 * area.mean()


def test_gradcam_finds_the_background_shortcut_of_blue_circles(demo, record_property):
    run, samples = demo
    circles = samples[
        (samples["subset"] == "train")
        & (samples["true_shape"] == SHAPES.index("circle"))
        & samples["correct"]
        & ~samples["easy_copy"]
        & ~samples["label_flipped"]
    ]
    shares = {}
    for name, rows in (
        ("spurious", circles[circles["spurious_aligned"]]),
        ("other", circles[~circles["spurious_aligned"]]),
    ):
        found = run.explain(list(rows["id"]), method="gradcam", layer=LAST_CONV, cache=False)
        shares[name] = _share(found.maps, ~_boxes(rows))
        record_property(f"background_share_{name}", float(shares[name].mean()))
    assert len(shares["spurious"]) > 100 and len(shares["other"]) > 30
    assert shares["spurious"].mean() > shares["other"].mean() + 0.04
    assert mannwhitneyu(shares["spurious"], shares["other"], alternative="greater").pvalue < 0.01


@pytest.mark.parametrize(
    ("method", "significant"),
    [
        ("gradcam", {"insertion"}),  # coarse (8 x 8): it restores the object fast
        ("integrated_gradients", {"deletion"}),  # pixel-exact: it removes the object fast
        ("saliency", {"deletion", "insertion"}),
    ],
)
def test_faithful_methods_beat_a_random_order(demo, method, significant, record_property):
    """Deletion and insertion AUCs against random pixel orders, paired over 48 samples; where a
    method's advantage is not significant, its mean must still be on the right side."""
    run, _ = demo
    checks = run.check_explanations(method, n=48, sanity=False, cache=False)
    samples = checks.samples
    for name, value in checks.summary().items():
        if isinstance(value, float):
            record_property(name, value)
    deletion, deletion_random = samples["deletion_auc"], samples["deletion_auc_random"]
    insertion, insertion_random = samples["insertion_auc"], samples["insertion_auc_random"]
    assert deletion.mean() < deletion_random.mean() - 0.03
    if "deletion" in significant:
        assert wilcoxon(deletion, deletion_random, alternative="less").pvalue < 0.01
    if "insertion" in significant:
        assert insertion.mean() > insertion_random.mean() + 0.15
        assert wilcoxon(insertion, insertion_random, alternative="greater").pvalue < 0.01
    assert (samples["infidelity"] >= 0).all() and (samples["sensitivity"] >= 0).all()
    curves = checks.curves
    assert curves["deletion"].iloc[0] == pytest.approx(curves["deletion_random"].iloc[0])
    assert curves["insertion"].iloc[-1] == pytest.approx(curves["insertion_random"].iloc[-1])


@pytest.mark.parametrize("method", ["gradcam", "saliency"])
def test_cascading_randomisation_destroys_the_maps(demo, method, record_property):
    run, _ = demo
    checks = run.check_explanations(method, n=16, cache=False, layer=None)
    randomization = checks.randomization
    record_property("spearman_by_step", randomization["spearman"].round(3).tolist())
    assert randomization["randomized"].tolist() == [
        "classifier.3",
        "classifier.1",
        "features.2.0",
        "features.1.0",
        "features.0.0",
    ]
    assert randomization["spearman"].iloc[-1] < 0.25
    assert randomization["spearman"].mean() < 0.5


def test_filter_images_excite_their_channel_beyond_any_real_image(demo):
    run, _ = demo
    channels = [0, 1, 2, 3]
    found = run.visualize_filters("features.2", channels, settings=FilterSettings(steps=48))
    assert found.images.shape == (4, 32, 32, 3) and found.images.dtype == np.uint8
    best_real = real_channel_means(run, channels, 500).amax(dim=0).numpy()
    assert (found.activation > best_real).all(), (found.activation, best_real)


def test_filter_visualisation_is_seeded(demo):
    run, _ = demo
    quick = FilterSettings(steps=4)
    first = run.visualize_filters("features.1.0", [3], settings=quick)
    again = run.visualize_filters("features.1.0", [3], settings=quick)
    other = run.visualize_filters("features.1.0", [3], settings=FilterSettings(steps=4, seed=1))
    np.testing.assert_array_equal(first.images, again.images)
    assert not np.array_equal(first.images, other.images)
    with pytest.raises(ls.LatentsightError, match=r"has 16 channels"):
        run.visualize_filters("features.1.0", [16], settings=quick)


def test_maco_filter_images_excite_their_channels_beyond_typical_inputs(demo):
    run, _ = demo
    channels = [0, 1, 2]
    found = run.visualize_filters(
        "features.2", channels, method="maco", settings=MacoSettings(steps=24)
    )
    assert found.images.shape == (3, 32, 32, 3) and found.transparency.shape == (3, 32, 32)
    median_real = real_channel_means(run, channels, 200).median(dim=0).values.numpy()
    assert (found.activation > median_real).all(), (found.activation, median_real)
    with pytest.raises(ls.LatentsightError, match=r"takes MacoSettings"):
        run.visualize_filters("features.2", [0], method="maco", settings=FilterSettings())
    with pytest.raises(ls.LatentsightError, match=r"need no input_transform"):
        run.visualize_filters("features.2", [0], method="maco", input_transform=lambda x: x)
    with pytest.raises(ls.LatentsightError, match=r"give 'fourier' or 'maco'"):
        run.visualize_filters("features.2", [0], method="lucid")


def test_activation_sweep_of_a_demo_image(demo, tmp_path):
    run, _ = demo
    sweep = run.activations("val/0")
    assert list(sweep) == [f"features.{b}.{m}" for b in range(3) for m in (2, 3)]
    table = sweep.sparsity
    assert table["channels"].tolist() == [8, 8, 16, 16, 32, 32]
    assert table["size"].tolist() == ["32x32", "16x16", "16x16", "8x8", "8x8", "4x4"]
    assert table["blank_fraction"].between(0, 1).all()
    written = sweep.save(tmp_path)
    assert len(written) == 6 and written[0].name == "features.0.2.png"
