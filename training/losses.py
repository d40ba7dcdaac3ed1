"""The loss terms of both stages (docs/training.md, paper Eq. 1-3), as plain functions of logits.

Discriminators return logits; every log loss here is ``binary_cross_entropy_with_logits``.
Returned losses are float32 scalars even under autocast.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mnm.errors import MnmError
from mnm.training.distributed import any_rank

BG_WEIGHT = 10.0  # background-stage adversarial weight (FineGAN)
REPRED_WEIGHTS = {"z": 5.0, "b": 5.0, "p": 10.0, "c": 10.0}  # Eq. 3: L1 for z, cross-entropy for b, p, c


class NonFiniteLoss(MnmError):
    """A loss became NaN or infinite: training stops before the optimiser applies it.

    ``loss_name`` is None on a process whose own losses were finite while another's were not."""

    def __init__(self, step_name: str, loss_name: str | None, value: float | None):
        self.step_name, self.loss_name, self.value = step_name, loss_name, value
        super().__init__(f"non-finite {self.what}")

    @property
    def what(self) -> str:
        if self.loss_name is None:
            return f"loss on another process in the {self.step_name} step"
        return f"loss {self.loss_name} = {self.value} in the {self.step_name} step"


def check_finite(step_name: str, losses: dict[str, torch.Tensor]) -> dict[str, float]:
    """The losses as floats (one device sync); raise :class:`NonFiniteLoss` on the first NaN/inf.

    Under data parallelism every process agrees first (one all-reduce), so all of them stop here
    together instead of the healthy ones waiting forever in the gradient average of the next step."""
    floats = torch.stack([loss.detach().float() for loss in losses.values()]).cpu().tolist()
    values = dict(zip(losses, floats, strict=True))
    bad = next((name for name, value in values.items() if not math.isfinite(value)), None)
    if any_rank(bad is not None, next(iter(losses.values())).device):
        raise NonFiniteLoss(step_name, bad, None if bad is None else values[bad])
    return values


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Mean log loss of logits against a constant label (1 real, 0 fake)."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def background_d_losses(
    real_fake_real: torch.Tensor, bg_object_real: torch.Tensor, real_fake_fake: torch.Tensor,
    object_patches: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Background-D losses (FineGAN): real patches whose receptive field overlaps the object box
    are left out of the real term; the same labels (1 = background patch) train the
    background/object head on the real image. The real term is the mean over the kept patches
    (zero when the box covers every patch)."""
    background = (~object_patches).float()
    per_patch = F.binary_cross_entropy_with_logits(
        real_fake_real.float(), torch.ones_like(background), reduction="none"
    )
    real = (per_patch * background).sum() / background.sum().clamp(min=1.0)
    return {
        "d_bg_real": real,
        "d_bg_fake": bce(real_fake_fake, 0.0),
        "d_bg_class": F.binary_cross_entropy_with_logits(bg_object_real.float(), background),
    }


def mask_area_prior(masks: list[torch.Tensor], max_area: float) -> torch.Tensor:
    """Sum over ``masks`` [N, 1, H, W] of the batch mean of relu(mean mask − ``max_area``).

    Without it, a short run lets the parent and child stages paint the whole image (masks near
    one), the background stage goes unused, and mixing a background changes nothing.
    """
    return sum(F.relu(m.float().flatten(1).mean(1) - max_area).mean() for m in masks)


def pair_d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The paired D's objective: (encoder pair = real, generator pair = fake).

    WGAN (the critic part of WGAN-GP): mean D(fake) − mean D(real); log loss: Eq. 2.
    """
    if kind == "bce":
        return bce(real, 1.0) + bce(fake, 0.0)
    return fake.float().mean() - real.float().mean()


def pair_fool_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """What E and G minimise against a paired D: the labels swapped (E wants its pairs called
    fake, G its pairs called real)."""
    if kind == "bce":
        return bce(real, 0.0) + bce(fake, 1.0)
    return real.float().mean() - fake.float().mean()


def gradient_penalty(
    d: torch.nn.Module, real: tuple[torch.Tensor, torch.Tensor], fake: tuple[torch.Tensor, torch.Tensor],
    alpha: torch.Tensor,
) -> torch.Tensor:
    """WGAN-GP on image-code pairs: (‖∇D‖₂ − 1)² at random interpolates of the two pairs.

    Image and code are interpolated with the same per-sample ``alpha`` [N] (one point on the
    line between the two joint samples); the norm is over both inputs together.
    """
    image = torch.lerp(fake[0].float(), real[0].float(), alpha.view(-1, 1, 1, 1)).requires_grad_(True)
    code = torch.lerp(fake[1].float(), real[1].float(), alpha.view(-1, 1)).requires_grad_(True)
    out = d(image, code).float()
    grad_image, grad_code = torch.autograd.grad(out.sum(), (image, code), create_graph=True)
    squared = grad_image.float().pow(2).flatten(1).sum(1) + grad_code.float().pow(2).sum(1)
    return (squared.add(1e-12).sqrt() - 1.0).pow(2).mean()


def code_reprediction(
    predicted: dict[str, torch.Tensor], codes: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Eq. 3, unweighted per code: L1 for z, cross-entropy (logits vs one-hot) for b, p, c."""
    out = {"repred_z": F.l1_loss(predicted["z"].float(), codes["z"])}
    for kind in ("b", "p", "c"):
        out[f"repred_{kind}"] = F.cross_entropy(predicted[kind].float(), codes[kind].argmax(1))
    return out
