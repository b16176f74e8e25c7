"""The demo's Projects by name, so that a demo run records where its Project is and commands that
need the model (``latentsight explain``, ``concepts audit``, the dashboard's new maps) can load it.

A name is ``shapes`` with ``_tiny``, ``_clean`` and ``_seed<N>`` as the demo was run, e.g.
``latentsight.demo.projects:shapes_tiny_seed3``; loading one regenerates the seeded data and
reuses the cached demo CNN (training it again, identically, if the cache is gone).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from latentsight.project import Project

MODULE = "latentsight.demo.projects"
NAME = re.compile(r"shapes(?P<tiny>_tiny)?(?P<clean>_clean)?(?:_seed(?P<seed>\d+))?")


def project_name(*, tiny: bool, clean: bool, seed: int) -> str:
    """The attribute of this module that rebuilds the demo Project run with these options."""
    return "shapes" + "_tiny" * tiny + "_clean" * clean + (f"_seed{seed}" if seed else "")


def __getattr__(name: str) -> Callable[[], Project]:
    match = NAME.fullmatch(name)
    if match is None:
        raise AttributeError(f"module {MODULE!r} has no attribute {name!r}")

    def build() -> Project:
        from latentsight.demo.model import load_or_train_demo_model
        from latentsight.demo.run import demo_config, demo_project
        from latentsight.demo.shapes import generate_shapes

        seed = int(match["seed"] or 0)
        config = demo_config(tiny=bool(match["tiny"]), clean=bool(match["clean"]), seed=seed)
        subsets = generate_shapes(config)
        model, _ = load_or_train_demo_model(config, subsets, seed=seed)
        return demo_project(subsets, model)

    return build
