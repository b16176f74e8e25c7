"""How much faster is batched concept importance than a per-image Sobol loop as CRAFT runs it?

Run ``python benchmarks/discovery_importance.py [--quick]``. On 10,000 synthetic latents
(``--dims``, 2048 by default as a ResNet-50's pooled features, the width of the issue's
dictionary benchmark: non-negative combinations of planted directions) with a 10-concept NMF
dictionary, it times Sobol total indices of each sample's predicted class:

* the baseline, a faithful per-image loop as ``craft_torch.Craft.estimate_importance`` runs it:
  for each image, one scrambled Sobol design (32 x (k + 2) masks), the perturbed activations
  ``(u * m) W + r``, one model call of the head on them, the Jansen estimator. At full size it
  runs on a subset of the images and its time is extrapolated to all of them (said so in the
  output);
* a linear head: the closed form ``(u_i b_i)^2 / sum_j (u_j b_j)^2`` (goal >= 50x), checked
  against the loop's estimates (the Sobol estimate at 32 designs is within a few hundredths);
* a two-layer MLP head (dims -> ``--hidden`` (512) -> ReLU -> 10): the concept decoder, one
  model call over many (sample, mask) pairs, with the same design for every sample, so its indices equal the
  loop's (asserted; goal >= 5x). Twice: hooked at the head's input (``"1:input"``, the
  substitution as written) and at its first linear layer's input (``"1.0:input"``, where the
  decoder folds the dictionary through that layer's weights, as it does for any layer read
  by an ``nn.Linear``). The head's first product is most of the work, so batching alone gains
  little on a CPU; the folding is what removes it.

Torch and numpy's BLAS run on ``--threads`` threads (1 by default) for both: on a shared 2-core
machine their thread pools wait on descheduled threads, which swamps small per-image calls. The
load average is printed beside the figures: re-run when the machine is quiet.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits
from torch import nn

from latentsight.discovery import fit_dictionary
from latentsight.discovery.attribution import AttributionSettings, concept_attributions
from latentsight.discovery.decoder import ConceptDecoder
from latentsight.discovery.importance import LinearHead, linear_attributions
from latentsight.discovery.sobol import jansen_total, sobol_design

LINEAR_GOAL, MLP_GOAL = 50.0, 5.0
CONCEPTS, CLASSES, DESIGN = 10, 10, 32


def synthetic(n: int, dims: int, seed: int = 0) -> np.ndarray:
    """Latents from 12 sparse non-negative directions with exponential codes, plus noise."""
    rng = np.random.default_rng(seed)
    directions = rng.random((12, dims)) * (rng.random((12, dims)) < 0.4)
    codes = rng.exponential(1.0, (n, 12)) * (rng.random((n, 12)) < 0.3)
    return np.maximum(codes @ directions + rng.normal(0.0, 0.05, (n, dims)), 0.0)


def heads(dims: int, hidden: int, seed: int = 0) -> tuple[nn.Linear, nn.Sequential]:
    """A linear head and a two-layer MLP head, seeded."""
    torch.manual_seed(seed)
    return nn.Linear(dims, CLASSES), nn.Sequential(
        nn.Linear(dims, hidden), nn.ReLU(), nn.Linear(hidden, CLASSES)
    )


def craft_loop(
    head: nn.Module,
    latents: np.ndarray,
    codes: np.ndarray,
    components: np.ndarray,
    labels: np.ndarray,
    masks: np.ndarray,
) -> np.ndarray:
    """Per image: perturbed activations of the design, one head call, the Jansen estimator."""
    out = []
    for latent, code, label in zip(latents, codes, labels, strict=True):
        residual = latent - code @ components
        perturbed = (code[None] * masks) @ components + residual
        with torch.no_grad():
            scores = head(torch.from_numpy(perturbed).float())[:, label].double().numpy()
        out.append(jansen_total(scores, len(code)))
    return np.stack(out)


def closed_form(head: nn.Linear, codes: np.ndarray, components: np.ndarray, labels: np.ndarray):
    """Total indices of a linear head in closed form."""
    weight = head.weight.detach().double().numpy()
    linear = LinearHead("head", weight, head.bias.detach().double().numpy())
    return linear_attributions(codes, components, linear, labels, "sobol")


def batched(
    head: nn.Module,
    layer: str,
    inputs: torch.Tensor,
    codes: np.ndarray,
    components: np.ndarray,
    labels: np.ndarray,
) -> np.ndarray:
    """Total indices through the concept decoder at ``layer``, batched."""
    decoder = ConceptDecoder(nn.Sequential(nn.Identity(), head), layer, components)
    settings = AttributionSettings(design=DESIGN, seed=0)
    return concept_attributions(
        decoder, lambda rows: inputs[rows], codes, labels, "sobol", settings, width=inputs.shape[1]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke version (seconds)")
    parser.add_argument("--dims", type=int, default=2048, help="latent width (ResNet-50: 2048)")
    parser.add_argument("--hidden", type=int, default=512, help="the MLP head's hidden width")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch and BLAS threads for both paths"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):  # numpy's BLAS too
        run(args, Console())


def run(args: argparse.Namespace, console: Console) -> None:
    """Time the loop and the fast paths on both heads; print the table and the verdicts."""
    n, looped = (1000, 200) if args.quick else (10_000, 2000)
    latents = synthetic(n, args.dims)
    codes, dictionary = fit_dictionary(latents, CONCEPTS)
    components = dictionary.components
    masks = sobol_design(CONCEPTS, DESIGN, seed=0)
    inputs = torch.from_numpy(latents).float()
    sub = np.arange(looped)
    table = Table(
        title=f"Sobol importance, {n:,} samples x {CONCEPTS} concepts, {DESIGN} designs, "
        f"{args.dims}-wide latents, MLP {args.dims}-{args.hidden}-{CLASSES}, "
        f"{args.threads} thread(s)"
    )
    for column in ("head", "implementation", "seconds", "speed-up", "load (1 min)"):
        table.add_column(column, justify="right")
    verdicts = []
    for name, head, goal in zip(
        ("linear", "2-layer MLP"),
        heads(args.dims, args.hidden),
        (LINEAR_GOAL, MLP_GOAL),
        strict=True,
    ):
        with torch.no_grad():
            labels = head(inputs).argmax(1).numpy()
        start = time.perf_counter()
        slow = craft_loop(head, latents[sub], codes[sub], components, labels[sub], masks)
        slow_time = (time.perf_counter() - start) * n / looped
        table.add_row(
            name,
            f"CRAFT loop (timed on {looped:,} images, x{n // looped} extrapolated)",
            f"{slow_time:.2f}",
            "1.0x",
            f"{os.getloadavg()[0]:.1f}",
        )
        if isinstance(head, nn.Linear):
            start = time.perf_counter()
            fast = closed_form(head, codes, components, labels)
            fast_time = time.perf_counter() - start
            error = np.abs(fast[sub] - slow).mean()
            assert error < 0.05, f"closed form and loop differ by {error:.3f} on average"
            rows = [
                (f"closed form (mean |difference| to the loop's estimates {error:.3f})", fast_time)
            ]
        else:
            rows = []
            for layer, how in (("1:input", "at the head's input"), ("1.0:input", "folded")):
                start = time.perf_counter()
                fast = batched(head, layer, inputs, codes, components, labels)
                rows.append(
                    (
                        f"batched decoder, {how} (indices equal to the loop's)",
                        time.perf_counter() - start,
                    )
                )
                assert np.allclose(fast[sub], slow, atol=1e-4), f"{layer}: batched and loop differ"
        for how, fast_time in rows:
            speedup = slow_time / fast_time
            table.add_row(
                name, how, f"{fast_time:.3f}", f"{speedup:,.0f}x", f"{os.getloadavg()[0]:.1f}"
            )
        best = slow_time / min(seconds for _, seconds in rows)
        verdicts.append(f"{name} head, goal {goal:.0f}x: {'met' if best >= goal else 'NOT met'}")
    console.print(table)
    for verdict in verdicts:
        console.print(verdict)


if __name__ == "__main__":
    main()
