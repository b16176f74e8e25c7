"""How a class value reads on screen: by its name where the run names its classes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentsight.classes import class_label, class_name, explained_target

NAMES = {0: "circle", 1: "square", 2: "triangle", 3: "cross"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2, "triangle"),
        (np.int64(0), "circle"),
        (3.0, "cross"),  # a target column made float by unlabelled samples
        (np.float32(1.0), "square"),
        (7, None),  # no such class
        (1.5, None),
        (float("nan"), None),
        (pd.NA, None),
        (True, None),
        ([0, 1], None),
        ("1", None),  # text is shown as it is
    ],
)
def test_class_name_reads_a_scalar_class_index(value, expected):
    assert class_name(value, NAMES) == expected


def test_without_names_nothing_is_renamed():
    assert class_name(2, {}) is None
    assert class_label(2, {}) == "class 2"
    assert explained_target("class-2", {}) == "class-2"


def test_an_explained_class_reads_by_its_name():
    assert explained_target("class-2", NAMES) == "triangle"
    assert explained_target("class-9", NAMES) == "class-9"
    assert explained_target("predicted", NAMES) == "predicted"
    assert explained_target("label", NAMES) == "label"
