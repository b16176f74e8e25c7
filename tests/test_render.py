"""Drawing samples: the default render against its closed form, and what capture stores."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import latentsight as ls
from latentsight.render import THUMBNAIL_SIZE, default_render, render_batch, stored_render
from latentsight.store.renders import png


def test_unit_range_floats_are_scaled_to_bytes():
    images = torch.rand(4, 3, 8, 6, generator=torch.Generator().manual_seed(0))
    expected = np.floor(images.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
    before = images.clone()
    np.testing.assert_array_equal(render_batch(images), expected)
    assert torch.equal(images, before)  # the caller's tensor is left as it was


def test_other_ranges_are_min_max_scaled_per_image():
    generator = torch.Generator().manual_seed(1)
    images = torch.stack([torch.rand(1, 5, 5, generator=generator) * scale for scale in (1, 4)])
    images[0] -= 0.5  # one image with negatives, one above 1
    drawn = render_batch(images)
    assert drawn.shape == (2, 5, 5, 1)
    for image, pixels in zip(images.numpy(), drawn, strict=True):
        scaled = (image - image.min()) / (image.max() - image.min())
        expected = np.floor(np.moveaxis(scaled, 0, -1) * 255 + 0.5).astype(np.uint8)
        np.testing.assert_array_equal(pixels, expected)
        assert pixels.min() == 0 and pixels.max() == 255


def test_constant_out_of_range_image_nan_and_bytes():
    constant = torch.full((1, 3, 4, 4), 7.0)
    assert render_batch(constant).max() == 0
    with_nan = torch.tensor([[[[0.5, float("nan")], [0.0, 1.0]]]])
    np.testing.assert_array_equal(render_batch(with_nan)[0, :, :, 0], [[128, 0], [0, 255]])
    raw = np.random.default_rng(0).integers(0, 256, (2, 6, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(render_batch(raw), raw)  # channels last, kept as they are


def test_default_render_draws_one_image_like_the_batch():
    image = torch.randn(3, 9, 7, generator=torch.Generator().manual_seed(2))
    drawn = np.asarray(default_render(image))
    np.testing.assert_array_equal(drawn, render_batch(torch.stack([image, image * 3]))[0])
    gray = np.asarray(default_render(np.zeros((6, 6), dtype=np.float32)))
    assert gray.shape == (6, 6) and gray.max() == 0


def test_stored_renders_are_thumbnails_of_raw_pixels():
    large = Image.new("RGB", (300, 150), (10, 200, 30))
    kind, pixels, text = stored_render(large, "a")
    assert kind == "image" and text is None
    assert pixels.shape == (THUMBNAIL_SIZE // 2, THUMBNAIL_SIZE, 3)
    assert (pixels == (10, 200, 30)).all()
    palette = Image.new("P", (8, 8))
    assert stored_render(palette, "b")[1].shape == (8, 8, 3)
    assert stored_render("some text", "c") == ("text", None, "some text")
    decoded = np.asarray(Image.open(io.BytesIO(png(pixels))))
    np.testing.assert_array_equal(decoded, pixels)


def test_a_render_of_the_wrong_type_names_the_fix():
    with pytest.raises(ls.ProjectError, match="return a PIL image, an H x W x 3 uint8 array"):
        stored_render(3.5, "train/0")


def test_nan_is_drawn_as_zero_in_a_scaled_image():
    image = torch.tensor([[[[-1.0, float("nan")], [0.0, 1.0]]]])
    np.testing.assert_array_equal(render_batch(image)[0, :, :, 0], [[0, 0], [128, 255]])


def test_pil_items_turned_into_tensors_by_a_collate_are_drawn_as_they_were_given(tmp_path):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)) for _ in range(6)]
    images[1] = images[1].convert("L")  # a grayscale item among colour ones

    def to_tensors(pairs):
        stacked = [np.asarray(image.convert("RGB"), dtype=np.float32) / 255 for image, _ in pairs]
        inputs = torch.from_numpy(np.stack(stacked)).permute(0, 3, 1, 2)
        return inputs, torch.tensor([target for _, target in pairs])

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 12 * 12, 2))
    project = ls.Project(
        model=model,
        data={"train": [(image, i % 2) for i, image in enumerate(images)]},
        loss=ls.losses.cross_entropy,
        collate=to_tensors,
    )
    run = ls.analyze(project, tmp_path / "run", progress=False, insights=False)
    assert run.manifest["settings"]["renders"] is True
    for index in (0, 1):
        drawn = np.asarray(run.render(f"train/{index}"))
        assert np.array_equal(drawn.squeeze(), np.asarray(images[index]))
