"""MACO feature visualization on a small CNN: the image keeps the template's magnitude spectrum
exactly, the objective rises far above random-phase images, and the search is seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentsight.demo.model import images_to_tensor
from latentsight.demo.shapes import ShapesConfig, generate_shapes
from latentsight.errors import ExplanationError
from latentsight.explain.maco import MacoSettings, PhaseImage, maco, magnitude_template


@pytest.fixture(scope="module")
def setting():
    """A seeded random small CNN, its channel-mean objectives, and the shapes images' template."""
    images = images_to_tensor(generate_shapes(ShapesConfig(n_train=64, n_val=8))["train"].images)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1),
        torch.nn.ReLU(),
    ).requires_grad_(False)

    def objectives(batch: torch.Tensor) -> torch.Tensor:
        return net(batch).mean(dim=(2, 3))[:, :4]

    return objectives, images


def test_the_image_keeps_the_template_spectrum_and_the_objective_rises(setting):
    objectives, images = setting
    template = magnitude_template(images)
    expected = torch.fft.fft2(images.double()).abs().mean(dim=0)  # the closed form, per channel
    assert torch.allclose(template.double(), expected, rtol=1e-5)
    found = maco(objectives, template, 4, settings=MacoSettings(steps=32), pixel_std=0.3)
    spectrum = torch.fft.fft2(found.images.double()).abs()
    assert torch.allclose(
        spectrum, template.double().expand_as(spectrum), atol=1e-4 * float(template.max())
    )
    with torch.no_grad():
        random = objectives(PhaseImage(template, 64, torch.Generator().manual_seed(7))()).numpy()
    spread = random.std(axis=0)
    assert (found.final > random.max(axis=0)).all(), (found.final, random.max(axis=0))
    assert ((found.final - found.initial) > 5 * spread).all(), (found.final, found.initial, spread)
    assert (found.history[-8:].mean(axis=0) > found.history[0]).all()
    assert found.transparency.shape == (4, 32, 32)
    assert float(found.transparency.min()) >= 0.0 and np.isclose(
        float(found.transparency.max()), 1.0
    )


def test_maco_is_seeded_and_checks_its_settings(setting):
    objectives, images = setting
    template = magnitude_template(images)
    quick = MacoSettings(steps=3)
    first = maco(objectives, template, 4, settings=quick)
    again = maco(objectives, template, 4, settings=quick)
    other = maco(objectives, template, 4, settings=MacoSettings(steps=3, seed=1))
    assert torch.equal(first.images, again.images)
    assert not torch.equal(first.images, other.images)
    with pytest.raises(ExplanationError, match=r"crop_scale"):
        MacoSettings(crop_scale=(0.5, 1.5))
    with pytest.raises(ExplanationError, match=r"steps must be a positive integer"):
        MacoSettings(steps=0)
    with pytest.raises(ExplanationError, match=r"batch of images"):
        magnitude_template(images[0])
