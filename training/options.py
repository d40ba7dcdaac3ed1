"""The training options of both stages: one dataclass, JSON round-trip, checked on load.

The run folder stores these in ``options.json`` and every checkpoint's meta, so a resumed run
trains with exactly the objective it started with. Batch size and seed are run settings, held by
the training loop, not here: the trainers never read them (the loop hands each step its batch and
its random generator).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from mnm.errors import MnmError

PAIR_LOSSES = ("wgan-gp", "bce")
FEATURE_CODES = ("constrained", "reference")


@dataclass(frozen=True)
class TrainOptions:
    """Optimiser settings, loss weights and the ablation switches (docs/training.md, paper §3)."""

    lr: float = 2e-4  # stage 1: every network; stage 2: the extractor S
    feature_d_lr: float = 2e-5  # stage 2: the feature discriminator
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.999  # EMA of G's weights (the saved and exported generator)
    pair_loss: str = "wgan-gp"  # paired image-code objective: the reference's WGAN-GP, or Eq. 2's log loss
    gp_weight: float = 10.0
    paired_adv: bool = True  # False: L1 reconstruction of real images through E then G instead of Eq. 2
    code_repred: bool = True  # False: no code reprediction (Eq. 3)
    repred_with_constraints: bool = False  # True: Eq. 3 on constrained codes (the reference uses none)
    # Not in the reference: a prior for short training. Parent and child masks whose mean exceeds this
    # share of the image are penalised (hinge, weight mask_prior_weight); 1.0 turns it off.
    mask_max_area: float = 1.0
    mask_prior_weight: float = 10.0
    feature_l1: bool = True  # stage 2: L1(S(G(y)), φ(y))
    feature_adv: bool = True  # stage 2: adversarial loss on S(x) against φ(p, z)
    # stage 2's codes: "constrained" (as stage 1's adversarial side; measured better on the synthetic
    # set), or "reference" (b, p, c independent, a soft p for a whole batch 20 % of the time, as the
    # reference's second stage). docs/training.md
    feature_codes: str = "constrained"
    amp: bool = False  # bfloat16 autocast on CUDA

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str = "training options") -> TrainOptions:
        """Defaults for absent fields; one error naming the first unknown or ill-typed field."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise MnmError(f"{source}: unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")
        values = {}
        for key, value in data.items():
            default = known[key].default
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise MnmError(f"{source}: {key} must be true or false, got {value!r}")
            elif isinstance(default, float):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise MnmError(f"{source}: {key} must be a number, got {value!r}")
                value = float(value)
            elif key == "betas":
                value = _betas(value, source)
            values[key] = value
        return cls(**values).validate(source)

    def validate(self, source: str = "training options") -> TrainOptions:
        if self.feature_codes not in FEATURE_CODES:
            raise MnmError(f"{source}: feature_codes must be one of {', '.join(FEATURE_CODES)}, "
                           f"got {self.feature_codes!r}")
        if self.pair_loss not in PAIR_LOSSES:
            choices = ", ".join(PAIR_LOSSES)
            raise MnmError(f"{source}: pair_loss must be one of {choices}, got {self.pair_loss!r}")
        for key in ("lr", "feature_d_lr"):
            if not getattr(self, key) > 0:
                raise MnmError(f"{source}: {key} must be positive, got {getattr(self, key)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise MnmError(f"{source}: ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 < self.mask_max_area <= 1.0:
            raise MnmError(f"{source}: mask_max_area must be in (0, 1], got {self.mask_max_area}")
        if self.mask_prior_weight < 0:
            raise MnmError(f"{source}: mask_prior_weight must be non-negative, got {self.mask_prior_weight}")
        if self.gp_weight < 0:
            raise MnmError(f"{source}: gp_weight must be non-negative, got {self.gp_weight}")
        return self


def _betas(value, source: str) -> tuple[float, float]:
    ok = (
        isinstance(value, (list, tuple)) and len(value) == 2
        and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in value)
    )
    if not ok:
        raise MnmError(f"{source}: betas must be two numbers in [0, 1), got {value!r}")
    return float(value[0]), float(value[1])
