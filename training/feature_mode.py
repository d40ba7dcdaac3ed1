"""Stage 2 (feature mode, paper §3.4): train the shape/pose extractor S against the frozen
stage-1 generator, so S(x) lands in the space of the parent stage's feature φ(p, z).

One step: sample codes y and run the frozen G (eval mode): φ(y) and the image G(y).
Feature-D step: φ(y) is real, S(x) on the real batch is fake. S step: fool that D, plus
L1(S(G(y)), φ(y)), which ties S(x) to x's own pixel-level shape and pose; both weigh 1.

The codes (``feature_codes``): "constrained" as stage 1's adversarial side (c uniform, p = parent of
c, b = c), the default, or "reference" as the reference's second stage: b, p and c independent (G(y)
pairs any texture and background with any shape) and, for 20 % of the batches, a soft p, softmax of
N(0, 1) logits (φ between the shapes). On the synthetic set the constrained codes gave the better
feature-mode transfer; docs/training.md has the numbers.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnm.config import ModelConfig
from mnm.errors import MnmError
from mnm.nn import Encoders, FeatureD, FeatureExtractor, Generator, init_weights
from mnm.training import losses as L
from mnm.training.code_mode import encode
from mnm.training.options import TrainOptions
from mnm.training.trainer import Trainer, image_grid, mask_row, set_requires_grad

SOFT_P_SHARE = 0.2  # share of batches with a soft p (the reference's second stage)


class FeatureModeTrainer(Trainer):
    """Stage-2 trainer. ``modules()``: ``extractor`` and ``discriminators.feature`` (the feature D
    keeps its place in the Discriminators layout, so a stage-2 checkpoint holds one consistent
    ``discriminators.*`` set). ``generator`` and ``encoders`` are frozen and not in ``modules()``."""

    def __init__(
        self, cfg: ModelConfig, options: TrainOptions, device: str | torch.device | None,
        generator: Generator, encoders: Encoders,
    ):
        super().__init__(cfg, options, device)
        if not (options.feature_l1 or options.feature_adv):
            raise MnmError("training options: feature_l1 and feature_adv are both off, so nothing trains S")
        self.generator = generator.to(self.device).eval().requires_grad_(False)
        self.encoders = encoders.to(self.device).eval().requires_grad_(False)
        self.extractor = init_weights(FeatureExtractor(cfg)).to(self.device)
        self.feature_d = init_weights(FeatureD(cfg)).to(self.device)
        self._optimizers = {
            "extractor": self.adam(self.extractor.parameters(), options.lr),
            "feature_d": self.adam(self.feature_d.parameters(), options.feature_d_lr),
        }

    def modules(self) -> dict[str, nn.Module]:
        return {"extractor": self.extractor, "discriminators.feature": self.feature_d}

    def train_step(self, batch: dict[str, torch.Tensor], rng: np.random.Generator) -> dict[str, float]:
        """One feature-D step (when ``feature_adv``) and one S step; randomness from ``rng`` only."""
        x = batch["object"].to(self.device, torch.float32)
        opts = self.options
        stats: dict[str, float] = {}
        self.extractor.train()
        self.feature_d.train()
        with self.seeded(rng):
            codes = self.feature_codes(len(x), rng)
            with torch.no_grad(), self.autocast():
                generated = self.generator(**codes)
            phi = generated["shape_feature"].float()
            terms = {}
            if opts.feature_adv:
                with self.autocast():
                    s_real = self.extractor(x)
                    d_terms = {
                        "d_feature_real": L.bce(self.feature_d(phi), 1.0),
                        "d_feature_fake": L.bce(self.feature_d(s_real.detach()), 0.0),
                    }
                stats.update(L.check_finite("feature discriminator", d_terms))
                self._step("feature_d", self._feature_d_total(d_terms))
                set_requires_grad(self.feature_d.parameters(), False)  # S step: no grads for D
                try:
                    with self.autocast():
                        terms["s_adv"] = L.bce(self.feature_d(s_real), 1.0)
                finally:
                    set_requires_grad(self.feature_d.parameters(), True)
            if opts.feature_l1:
                with self.autocast():
                    terms["s_l1"] = F.l1_loss(self.extractor(generated["image"]).float(), phi)
            stats.update(L.check_finite("extractor", terms))
            self._step("extractor", self._extractor_total(terms))
        return stats

    @staticmethod
    def _feature_d_total(terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return terms["d_feature_real"] + terms["d_feature_fake"]

    @staticmethod
    def _extractor_total(terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """Fooling the feature D plus the L1 term, each weighing 1 as in the reference (either may be off)."""
        return terms.get("s_adv", 0.0) + terms.get("s_l1", 0.0)

    def feature_codes(self, n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """The codes of one step (see the module docstring); every draw from ``rng``."""
        if self.options.feature_codes == "constrained":
            return self.codes(n, rng, constrained=True)
        codes = self.codes(n, rng, constrained=False)
        if rng.random() < SOFT_P_SHARE:
            logits = torch.from_numpy(rng.standard_normal((n, self.cfg.n_parent)).astype(np.float32))
            codes["p"] = logits.softmax(1).to(self.device)
        return codes

    def _step(self, name: str, loss: torch.Tensor) -> None:
        optimizer = self._optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def sample_grid(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """Columns = the batch. Rows: real input; its feature-mode reconstruction (S(x) with b, c
        and z_bg encoded from x) and child mask; S(x) with the background and texture of the next
        column's image; the code-mode reconstruction for comparison."""
        x = batch["object"].to(self.device, torch.float32)
        training = self.extractor.training
        self.extractor.eval()
        try:
            shape = self.extractor(x)
        finally:
            self.extractor.train(training)
        codes = encode(self.encoders, x)
        g = self.generator
        background = g.background(codes["z"], codes["b"])
        recon = g.child(shape, codes["c"], background)
        mixed = g.child(shape, codes["c"].roll(-1, 0), background.roll(-1, 0))
        return image_grid([
            x, recon["image"], mask_row(recon["child_mask"]), mixed["image"], g(**codes)["image"],
        ])
