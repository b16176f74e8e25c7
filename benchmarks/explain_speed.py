"""How much does an explanation cost, per method, against the passes it cannot avoid?

Run ``python benchmarks/explain_speed.py [--quick]``. For two models (the demo ShapesCNN on 32x32
images, a ResNet-18-sized network on 64x64 images) it captures a small run, then times, for one
batch of samples:

* the baseline: one forward and one backward pass of the batch (the gradient of each sample's
  predicted logit with respect to the input, ``torch.autograd.grad``);
* ``run.explain(ids, method=...)`` (uncached: it loads the samples from the data set, runs the
  method, upsamples, copies the maps to NumPy);
* Captum's own call made the plain way on the same tensor already in memory.

Each time is printed per sample and as a ratio to the baseline. The floor is 1 pass for Grad-CAM,
saliency and input x gradient, m for Integrated Gradients with m steps, the number of noisy
samples for SmoothGrad and GradientSHAP. Goals: Grad-CAM within 1.3x of its floor, Integrated
Gradients within 1.2x of m. Times are medians over repeats, the contenders taking turns.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from _models import N_CLASSES, resnet18, shapes_cnn
from captum.attr import (
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Saliency,
)
from rich.console import Console
from rich.table import Table
from torch import nn

import latentsight
from latentsight.explain import AttributionSettings
from latentsight.losses import cross_entropy

IG_STEPS = 32
SMOOTH_SAMPLES = 8
GRADCAM_GOAL = 1.3
IG_GOAL = 1.2


@dataclass(frozen=True)
class Case:
    """A model to time: its builder, input side, Grad-CAM layer and batch size."""

    name: str
    build: Callable[[], nn.Module]
    size: int
    layer: str
    batch: int


CASES = (
    Case("ShapesCNN", shapes_cnn, 32, "features.2.0", 64),
    Case("ResNet-18", resnet18, 64, "layer4.1.conv2", 16),
)


def median_seconds(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each run over ``repeats`` rounds after a warm-up, taking turns."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def time_case(case: Case, repeats: int, folder: Path) -> list[tuple[str, float, float, float]]:
    """Per method: (name, floor in passes, latentsight seconds, Captum seconds)."""
    model = case.build().eval()
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(case.batch, 3, case.size, case.size, generator=generator)
    labels = torch.randint(0, N_CLASSES, (case.batch,), generator=generator).tolist()
    data = {"val": [(images[i], labels[i]) for i in range(case.batch)]}
    project = latentsight.Project(model=model, data=data, loss=cross_entropy, layers=[case.layer])
    run = latentsight.analyze(
        project, folder / case.name, progress=False, insights=False, renders=False, device="cpu"
    )
    ids = list(run.samples["id"])
    target = torch.as_tensor(run.samples["prediction"].to_numpy().copy())
    layer = dict(model.named_modules())[case.layer]
    settings = AttributionSettings(steps=IG_STEPS, samples=SMOOTH_SAMPLES)

    def forward_backward() -> None:
        x = images.clone().requires_grad_()
        torch.autograd.grad(model(x).gather(1, target[:, None]).sum(), x)

    def ours(method: str, **options: object) -> Callable[[], object]:
        return lambda: run.explain(
            ids, method=method, settings=settings, batch_size=case.batch, cache=False, **options
        )

    def captum_gradcam() -> object:
        cam = LayerGradCam(model, layer).attribute(images, target=target, relu_attributions=True)
        return LayerAttribution.interpolate(cam, images.shape[-2:], interpolate_mode="bilinear")

    def captum_ig() -> object:
        return IntegratedGradients(model).attribute(
            images, baselines=0.0, target=target, n_steps=IG_STEPS, internal_batch_size=case.batch
        )

    def captum_smoothgrad() -> object:
        return NoiseTunnel(Saliency(model)).attribute(
            images, nt_type="smoothgrad", nt_samples=SMOOTH_SAMPLES, stdevs=0.15, target=target
        )

    methods = {
        "gradcam": (1, ours("gradcam", layer=case.layer), captum_gradcam),
        "saliency": (1, ours("saliency"), lambda: Saliency(model).attribute(images, target=target)),
        "input_x_gradient": (
            1,
            ours("input_x_gradient"),
            lambda: InputXGradient(model).attribute(images, target=target),
        ),
        "integrated_gradients": (IG_STEPS, ours("integrated_gradients"), captum_ig),
        "smoothgrad": (SMOOTH_SAMPLES, ours("smoothgrad"), captum_smoothgrad),
    }
    runs: dict[str, Callable[[], object]] = {"baseline": forward_backward}
    for name, (_, mine, theirs) in methods.items():
        runs[f"{name}/ours"] = mine
        runs[f"{name}/captum"] = theirs
    times = median_seconds(runs, repeats)
    rows = [("forward+backward", 1.0, times["baseline"], times["baseline"])]
    for name, (floor, _, _) in methods.items():
        rows.append((name, float(floor), times[f"{name}/ours"], times[f"{name}/captum"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one model, fewer repeats")
    arguments = parser.parse_args()
    repeats = 2 if arguments.quick else 5
    cases = CASES[:1] if arguments.quick else CASES
    console = Console(width=140)
    warnings.filterwarnings("ignore", message="Input Tensor")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            rows = time_case(case, repeats, Path(folder))
            baseline = rows[0][2]
            table = Table(title=f"{case.name}, batch of {case.batch} at {case.size}x{case.size}")
            for column in ("method", "floor (passes)", "ours ms/sample", "ours / pass",
                           "captum ms/sample", "captum / pass", "goal"):  # fmt: skip
                table.add_column(column, justify="right")
            for name, floor, mine, theirs in rows:
                goal = {"gradcam": GRADCAM_GOAL, "integrated_gradients": IG_GOAL}.get(name)
                verdict = ""
                if goal is not None:
                    within = mine / baseline <= goal * floor
                    verdict = f"<= {goal * floor:g} {'met' if within else 'MISSED'}"
                table.add_row(
                    name,
                    f"{floor:g}",
                    f"{1000 * mine / case.batch:.2f}",
                    f"{mine / baseline:.2f}",
                    f"{1000 * theirs / case.batch:.2f}",
                    f"{theirs / baseline:.2f}",
                    verdict,
                )
            console.print(table)


if __name__ == "__main__":
    main()
