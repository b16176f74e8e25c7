"""The synthetic shapes data set: determinism, layout, and every planted failure mode."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from latentsight.demo.shapes import (
    BACKGROUNDS,
    OBJECT_COLORS,
    SHAPES,
    ShapesConfig,
    ShapesSubset,
    generate_shapes,
)

CIRCLE, TRIANGLE = SHAPES.index("circle"), SHAPES.index("triangle")


@pytest.fixture(scope="module")
def planted() -> dict[str, ShapesSubset]:
    return generate_shapes(ShapesConfig())


@pytest.fixture(scope="module")
def clean() -> dict[str, ShapesSubset]:
    return generate_shapes(ShapesConfig().clean())


def assert_same(a: ShapesSubset, b: ShapesSubset) -> None:
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.targets, b.targets)
    pd.testing.assert_frame_equal(a.metadata, b.metadata)
    pd.testing.assert_frame_equal(a.truth, b.truth)


def test_same_config_gives_identical_data_and_seed_changes_it():
    first, second = generate_shapes(ShapesConfig.tiny()), generate_shapes(ShapesConfig.tiny())
    for name in ("train", "val"):
        assert_same(first[name], second[name])
    other = generate_shapes(ShapesConfig.tiny(seed=1))
    assert not np.array_equal(first["train"].images, other["train"].images)
    assert not np.array_equal(first["val"].images, other["val"].images)


def test_train_does_not_depend_on_val_size():
    base = generate_shapes(ShapesConfig.tiny())
    assert_same(base["train"], generate_shapes(ShapesConfig.tiny(n_val=50))["train"])


def test_layout_ids_dtypes_and_torch_items():
    data = generate_shapes(ShapesConfig.tiny())
    for name, n in (("train", 600), ("val", 240)):
        subset = data[name]
        assert len(subset) == n
        assert subset.images.shape == (n, 32, 32, 3) and subset.images.dtype == np.uint8
        assert subset.targets.dtype == np.int64 and set(subset.targets) <= set(range(len(SHAPES)))
        ids = [f"{name}/{i}" for i in range(n)]
        assert list(subset.metadata["id"]) == ids and list(subset.truth["id"]) == ids
        assert list(subset.metadata.columns) == [
            "id",
            "size",
            "object_color",
            "x",
            "y",
            "background",
            "clutter",
            "occlusion",
        ]
        assert set(subset.truth.columns) == {
            "id",
            "true_shape",
            "label_flipped",
            "grayscale",
            "easy_copy",
            "easy_source",
            "spurious_aligned",
            "spurious_conflict",
        }
        image, label = subset[7]
        assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
        assert image.min() >= 0.0 and image.max() <= 1.0
        assert label == subset.targets[7]
        assert torch.equal(image, torch.from_numpy(subset.images[7]).permute(2, 0, 1) / 255.0)


def test_metadata_describes_the_pixels(planted):
    subset = planted["val"]
    meta, truth = subset.metadata, subset.truth
    visible = (meta["occlusion"] == 0) & ~truth["grayscale"]
    rows = np.flatnonzero(visible)
    centre = subset.images[
        rows, meta["y"].round().astype(int)[rows], meta["x"].round().astype(int)[rows]
    ]
    declared = np.array([OBJECT_COLORS[c] for c in meta["object_color"][rows]])
    assert np.abs(centre.astype(int) - declared).max(axis=1).mean() < 15
    bare = np.flatnonzero(visible & (meta["clutter"] == 0))
    corner = subset.images[bare, 0, 0].astype(int)
    declared_bg = np.array([BACKGROUNDS[c] for c in meta["background"][bare]])
    assert np.abs(corner - declared_bg).max(axis=1).max() < 30  # colour jitter + pixel noise


def test_factor_ranges(planted):
    meta = pd.concat([planted["train"].metadata, planted["val"].metadata], ignore_index=True)
    assert 3.0 <= meta["size"].min() < 3.3 and 11.7 < meta["size"].max() <= 12.0
    assert set(meta["clutter"]) == set(range(7))
    assert set(meta["background"]) == set(BACKGROUNDS) and set(meta["object_color"]) == set(
        OBJECT_COLORS
    )
    occluded = meta["occlusion"] > 0
    assert 0.2 < occluded.mean() < 0.35 and meta["occlusion"].max() <= 1.0
    assert meta["occlusion"][occluded].mean() > 0.1
    big = generate_shapes(ShapesConfig.tiny(image_size=64))["val"]
    assert big.images.shape[1:] == (64, 64, 3)
    assert big.metadata["size"].min() >= 6.0 and big.metadata["size"].max() <= 24.0


def blue_rate(subset: ShapesSubset, circles: bool) -> float:
    is_circle = subset.truth["true_shape"] == CIRCLE
    rows = is_circle if circles else ~is_circle
    return float((subset.metadata["background"][rows] == "blue").mean())


def chi_square(a: pd.Series, b: pd.Series) -> float:
    observed = pd.crosstab(a, b).to_numpy()
    expected = observed.sum(1, keepdims=True) * observed.sum(0, keepdims=True) / observed.sum()
    return float(((observed - expected) ** 2 / expected).sum())


def test_spurious_background(planted, clean):
    train, val = planted["train"], planted["val"]
    assert blue_rate(train, circles=True) == pytest.approx(0.90, abs=0.01)
    assert blue_rate(train, circles=False) == pytest.approx(0.05, abs=0.01)
    # Val: background independent of class (df = 12, p = 0.001 critical value 32.9).
    assert chi_square(val.truth["true_shape"], val.metadata["background"]) < 32.9
    assert chi_square(train.truth["true_shape"], train.metadata["background"]) > 1000
    for subset in (train, val):
        blue = subset.metadata["background"] == "blue"
        circle = subset.truth["true_shape"] == CIRCLE
        assert subset.truth["spurious_aligned"].equals(blue & circle)
        assert subset.truth["spurious_conflict"].equals(blue & ~circle)
    for subset in clean.values():
        assert blue_rate(subset, circles=True) == pytest.approx(0.2, abs=0.05)
        assert blue_rate(subset, circles=False) == pytest.approx(0.2, abs=0.05)


def test_grayscale_population(planted, clean):
    for name, fraction in (("train", 0.01), ("val", 0.15)):
        subset = planted[name]
        gray = subset.truth["grayscale"].to_numpy()
        assert gray.mean() == pytest.approx(fraction, abs=0.002)
        pixels = subset.images[gray].astype(int)
        assert np.array_equal(pixels[..., 0], pixels[..., 1])
        assert np.array_equal(pixels[..., 1], pixels[..., 2])
        colour = subset.images[~gray].astype(int)
        chroma = (colour.max(axis=-1) - colour.min(axis=-1)).max(axis=(1, 2))
        assert (chroma > 0).all() and (chroma > 40).mean() > 0.9
    assert not any(subset.truth["grayscale"].any() for subset in clean.values())


def test_label_noise_on_heavy_clutter_triangles(planted, clean):
    truth = pd.concat([planted["train"].truth, planted["val"].truth], ignore_index=True)
    meta = pd.concat([planted["train"].metadata, planted["val"].metadata], ignore_index=True)
    targets = np.concatenate([planted["train"].targets, planted["val"].targets])
    heavy = (truth["true_shape"] == TRIANGLE) & (meta["clutter"] >= 4)
    assert heavy.iloc[: len(planted["train"])].sum() >= 200  # a large population by design
    flipped = truth["label_flipped"]
    assert flipped[heavy].mean() == pytest.approx(0.35, abs=0.05)
    assert not flipped[~heavy].any()
    assert (targets != truth["true_shape"]).to_numpy().tolist() == flipped.tolist()
    assert set(targets[flipped.to_numpy()]) == set(range(len(SHAPES))) - {TRIANGLE}
    for subset in clean.values():
        assert not subset.truth["label_flipped"].any()
        assert np.array_equal(subset.targets, subset.truth["true_shape"])


def test_easy_copies(planted, clean):
    train = planted["train"]
    truth, meta = train.truth, train.metadata
    copy = truth["easy_copy"].to_numpy()
    assert copy.mean() == pytest.approx(0.25, abs=0.001)
    source = truth["easy_source"].to_numpy()
    assert (source[~copy] == -1).all()
    sources = np.unique(source[copy])
    assert len(sources) == 12 and not copy[sources].any()
    assert (meta["clutter"][sources] == 0).all() and (meta["occlusion"][sources] == 0).all()
    assert (meta["size"][sources] >= 0.85 * 12).all()
    assert np.allclose(meta[["x", "y"]].to_numpy()[sources], 15.5)
    shape = truth["true_shape"].to_numpy()
    assert (shape[copy] == shape[source[copy]]).all()
    centres = meta[["x", "y"]].to_numpy()
    assert (np.abs(centres[copy] - centres[source[copy]]) <= 1).all()
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    rng = np.random.default_rng(0)
    for i in rng.choice(np.flatnonzero(copy), 50, replace=False):
        # Distance to each source under its best 1-px shift: only pixel noise is left for the
        # recorded source, and it is the nearest one.
        distance = [
            min(
                np.abs(
                    np.roll(train.images[j].astype(int), s, axis=(0, 1)) - train.images[i]
                ).mean()
                for s in shifts
            )
            for j in sources
        ]
        assert sources[int(np.argmin(distance))] == source[i]
        assert min(distance) < 5
    assert not planted["val"].truth["easy_copy"].any()
    assert not any(subset.truth["easy_copy"].any() for subset in clean.values())


def test_clean_is_the_same_data_without_the_planted_modes():
    config = ShapesConfig.tiny()
    assert config.clean() == ShapesConfig.tiny(
        spurious=False, underrepresented=False, label_noise=False, easy_copies=False
    )
    planted, clean = generate_shapes(config)["val"], generate_shapes(config.clean())["val"]
    # Everything not planted is shared: same shapes, sizes, positions and clutter.
    for column in ("size", "x", "y", "clutter", "object_color"):
        assert planted.metadata[column].equals(clean.metadata[column])
    assert planted.truth["true_shape"].equals(clean.truth["true_shape"])


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError):
        ShapesConfig(n_train=0)
    with pytest.raises(ValueError):
        ShapesConfig(image_size=8)
