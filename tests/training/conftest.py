"""A tiny synthetic dataset for the training tests, rendered once per session.

S=32 with 2 shapes × 2 textures and 4 backgrounds: the class counts of the ``tiny`` preset, so a
training step takes a fraction of a second on two cores.
"""

from __future__ import annotations

import pytest

SYNTH = {"n": 24, "size": 32, "shapes": 2, "textures_per_shape": 2, "backgrounds": 4, "correlation": 0.8,
         "seed": 0}


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory):
    """The dataset folder (CUB layout, read by ``open_dataset``)."""
    from mnm.training.synthetic import render_dataset

    return render_dataset(tmp_path_factory.mktemp("synth") / "data", workers=1, **SYNTH)
