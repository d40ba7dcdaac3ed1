"""What the two trainers share: device and autocast, per-step randomness, optimiser state as
plain tensors, and the snapshot grid.

Randomness: a step draws one seed from the numpy generator it is given and runs under a forked
torch RNG seeded with it, so the discriminators' input noise and the gradient-penalty
interpolation depend only on that generator, and torch's global RNG is left as it was.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from mnm.codes import sample_codes
from mnm.config import ModelConfig
from mnm.errors import MnmError
from mnm.imaging import to_uint8
from mnm.training.options import TrainOptions

_OPTIM_KEY = re.compile(r"^(?P<name>[A-Za-z_]+)\.(?P<index>\d+)\.(?P<field>[A-Za-z_]+)$")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """CUDA when present (``None`` or "auto"), else CPU; an explicit choice is kept."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Trainer:
    """Base of :class:`CodeModeTrainer` and :class:`FeatureModeTrainer`.

    Subclasses set ``self._optimizers`` and implement ``modules``, ``train_step`` and
    ``sample_grid``.
    """

    def __init__(self, cfg: ModelConfig, options: TrainOptions, device: str | torch.device | None):
        self.cfg = cfg
        self.options = options
        self.device = resolve_device(device)
        if options.amp and self.device.type != "cuda":
            raise MnmError(f"amp (bfloat16 autocast) needs a CUDA device; this run is on {self.device}")
        self._optimizers: dict[str, torch.optim.Optimizer] = {}

    def modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return dict(self._optimizers)

    def adam(self, params: Iterable[nn.Parameter], lr: float) -> torch.optim.Adam:
        return torch.optim.Adam(list(params), lr=lr, betas=self.options.betas)

    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.options.amp)

    @contextlib.contextmanager
    def seeded(self, rng: np.random.Generator) -> Iterator[None]:
        """Run a step's torch randomness from ``rng`` alone (one draw), then restore torch's RNG."""
        seed = int(rng.integers(0, 2**63 - 1))
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def codes(self, n: int, rng: np.random.Generator, constrained: bool) -> dict[str, torch.Tensor]:
        """Sampled codes on the device: z [n, Z], b/p/c one-hot."""
        sampled = sample_codes(self.cfg, n, rng, constrained)
        return {k: torch.from_numpy(getattr(sampled, k)).to(self.device) for k in ("z", "b", "p", "c")}

    # -- optimiser state as tensors (no pickle) --------------------------------------------

    def optimizer_tensors(self) -> dict[str, torch.Tensor]:
        """Every optimiser's per-parameter state as ``"<optimiser>.<param index>.<field>"`` tensors
        (Adam: ``step``, ``exp_avg``, ``exp_avg_sq``). Hyperparameters come from the options."""
        out = {}
        for name, optimizer in self._optimizers.items():
            for index, state in optimizer.state_dict()["state"].items():
                for field, value in state.items():
                    out[f"{name}.{index}.{field}"] = value.detach().clone()
        return out

    def load_optimizer_tensors(self, tensors: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        """Inverse of :meth:`optimizer_tensors`; checks names, indices and shapes before loading any."""
        states: dict[str, dict[int, dict[str, torch.Tensor]]] = {name: {} for name in self._optimizers}
        for key, value in tensors.items():
            match = _OPTIM_KEY.match(key)
            if match is None or match["name"] not in states:
                raise MnmError(f"{source}: optimiser tensor {key!r} belongs to no optimiser of this stage "
                               f"({', '.join(self._optimizers)})")
            states[match["name"]].setdefault(int(match["index"]), {})[match["field"]] = value
        for name, optimizer in self._optimizers.items():
            params = [p for group in optimizer.param_groups for p in group["params"]]
            for index, state in states[name].items():
                if index >= len(params):
                    raise MnmError(f"{source}: optimiser {name} has {len(params)} parameters, "
                                   f"but the checkpoint has state for parameter {index}")
                for field, value in state.items():
                    if value.dim() and value.shape != params[index].shape:
                        raise MnmError(f"{source}: optim.{name}.{index}.{field} is {list(value.shape)}, "
                                       f"the parameter is {list(params[index].shape)}")
        for name, optimizer in self._optimizers.items():
            current = optimizer.state_dict()
            optimizer.load_state_dict({"state": states[name], "param_groups": current["param_groups"]})


def set_requires_grad(params: Iterable[nn.Parameter], flag: bool) -> None:
    for param in params:
        param.requires_grad_(flag)


def mask_row(mask: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] mask in [0, 1] → a grey image row in [-1, 1]."""
    return (mask * 2 - 1).expand(-1, 3, -1, -1)


def image_grid(rows: list[torch.Tensor]) -> np.ndarray:
    """Rows of [N, 3, S, S] images in [-1, 1] → one H×W×3 uint8 image, a row per entry."""
    grid = torch.stack([row.float().clamp(-1, 1).cpu() for row in rows])  # [R, N, 3, S, S]
    r, n, c, s, _ = grid.shape
    grid = grid.permute(2, 0, 3, 1, 4).reshape(c, r * s, n * s)
    return to_uint8(grid.numpy())
