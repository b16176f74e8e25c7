"""Quickstart: capture a run of a small CNN on the built-in shapes data, then query it.

Run with `.venv/bin/python examples/quickstart.py` (about half a minute on a laptop CPU). The
module's `project` also serves the command line, e.g.
`latentsight check examples/quickstart.py:project`: importing it trains (or loads) the model and
captures nothing.
"""

import pandas as pd

import latentsight as ls
from latentsight.demo.model import load_or_train_demo_model
from latentsight.demo.shapes import SHAPES, ShapesConfig, generate_shapes

config = ShapesConfig.tiny()
subsets = generate_shapes(config)  # {"train": ..., "val": ...}, items are (image, label)
model, _ = load_or_train_demo_model(config, subsets)

project = ls.Project(
    model=model,
    data=subsets,
    loss=ls.losses.cross_entropy,
    metadata=pd.concat([subset.metadata for subset in subsets.values()]),
    layers=["features.2", "classifier.3:input"],
    classes=list(SHAPES),  # circle, square, triangle, cross: shown by name in every view
)

if __name__ == "__main__":
    run = ls.analyze(project, out="runs/quickstart", overwrite=True)

    print(
        run.samples[["id", "subset", "target", "prediction", "loss", "background", "size"]].head()
    )
    print(run.latent("features.2").shape, run.latent("features.2", view="grid").shape)
    query = "SELECT background, avg(loss) AS loss FROM samples GROUP BY 1 ORDER BY 2 DESC"
    print(run.sql(query).df())
