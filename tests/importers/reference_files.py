"""State dicts in the layout of the authors' published MixNMatch files, built from the tensor table
in ``mixnmatch_cub_tensors.json`` (names, shapes and dtypes of the CUB files, as saved by the
reference training code), so the importer is tested against the published layout, not against
itself.

- ``published_layout("G.pth")``: the CUB table as [(name without "module.", shape, dtype)] in
  the file's order.
- ``with_code_widths(...)``: the same table for other Z / N_p / N_c (Dogs, Cars): the layers that
  read or write b, p, c change, nothing else (as the table's "about" says).
- ``with_shapes(...)``: the same names and order with other shapes (the reduced-width layouts).
- ``random_state(...)``: tensors for a layout, drawn so activations stay near unit scale and
  BatchNorm statistics are off their init; ``save_reference`` writes one with ``torch.save``.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path

import torch

SPEC = json.loads((Path(__file__).with_name("mixnmatch_cub_tensors.json")).read_text())
CUB = {"z_dim": 100, "n_parent": 20, "n_child": 200}
DOGS = {"z_dim": 100, "n_parent": 12, "n_child": 120}
FILES = {"generator": "G.pth", "encoders": "E.pth", "extractor": "EX.pth"}

# Tensors whose shape depends on the codes: (file, name) -> {axis: fixed part + which widths}.
# In the reference, the generator's first layers take concat(z, code); the joint convs take the
# code channels beside the 16 feature channels; the encoder heads emit it.
CODE_WIDTH_AXES = {
    ("G.pth", "background_stage.fc.0.weight"): (1, ("z_dim", "n_child")),  # N_b = N_c
    ("G.pth", "parent_stage.fc.0.weight"): (1, ("z_dim", "n_parent")),
    ("G.pth", "parent_stage.jointConv.0.weight"): (1, ("n_parent",)),
    ("G.pth", "child_stage.jointConv.0.weight"): (1, ("n_child",)),
    ("E.pth", "model_z.4.weight"): (0, ("z_dim",)),
    ("E.pth", "model_z.4.bias"): (0, ("z_dim",)),
    ("E.pth", "model_b.4.weight"): (0, ("n_child",)),
    ("E.pth", "model_b.4.bias"): (0, ("n_child",)),
    ("E.pth", "model_p.4.weight"): (0, ("n_parent",)),
    ("E.pth", "model_p.4.bias"): (0, ("n_parent",)),
    ("E.pth", "model_c.4.weight"): (0, ("n_child",)),
    ("E.pth", "model_c.4.bias"): (0, ("n_child",)),
}


def published_layout(file: str) -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for row in SPEC["files"][file]["tensors"]:
        name, shape, dtype = row.split()
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        rows.append((name.removeprefix("module."), dims, dtype))
    return rows


def with_code_widths(file: str, z_dim: int, n_parent: int, n_child: int) -> list[tuple[str, tuple[int, ...], str]]:
    """The published layout of ``file`` for other code widths."""
    new = {"z_dim": z_dim, "n_parent": n_parent, "n_child": n_child}
    rows = []
    for name, shape, dtype in published_layout(file):
        if (file, name) in CODE_WIDTH_AXES:
            axis, widths = CODE_WIDTH_AXES[(file, name)]
            shape = list(shape)
            shape[axis] += sum(new[w] - CUB[w] for w in widths)
            shape = tuple(shape)
        rows.append((name, shape, dtype))
    return rows


def with_shapes(file: str, shapes: dict[str, tuple[int, ...]]) -> list[tuple[str, tuple[int, ...], str]]:
    """The published names and order of ``file`` with the shapes given by name (all must be given)."""
    return [(name, shapes[name], dtype) for name, _, dtype in published_layout(file)]


def random_state(layout, seed: int, prefix: bool = True) -> OrderedDict:
    """Tensors for ``layout``: weights N(0, 1/fan_in), BatchNorm weights and biases, running means
    and variances and every bias moved off their init; ``prefix`` adds DataParallel's "module."."""
    gen = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for name, shape, dtype in layout:
        leaf = name.rsplit(".", 1)[1]
        if dtype == "int64":
            value = torch.randint(0, 10_000, shape, generator=gen, dtype=torch.int64)
        elif leaf == "weight" and len(shape) >= 2:
            value = torch.randn(shape, generator=gen) / math.sqrt(math.prod(shape[1:]))
        elif leaf == "weight":  # BatchNorm scale
            value = 1 + 0.1 * torch.randn(shape, generator=gen)
        elif leaf == "running_var":
            value = 0.5 + 1.5 * torch.rand(shape, generator=gen)
        else:  # bias, BatchNorm shift, running_mean
            value = 0.1 * torch.randn(shape, generator=gen)
        state[("module." if prefix else "") + name] = value
    return state


def save_reference(state, path: Path, legacy: bool = False) -> Path:
    """``torch.save`` as the reference code does; ``legacy`` writes the pre-1.6 (non-zip) format the
    authors' PyTorch 1.3 produced."""
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


def unprefixed(state) -> dict:
    return {k.removeprefix("module."): v for k, v in state.items()}
