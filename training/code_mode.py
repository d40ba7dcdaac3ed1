"""Stage 1 (code mode): FineGAN's losses, the paired image-code adversarial loss (Eq. 2) and
code reprediction (Eq. 3), training G, the four encoders and every discriminator together.

One step: sample constrained codes y and generate G(y); encode the real batch, E(x).
Discriminator step: background patch D (real patches off the object box; the same labels train
its background/object head), child D real/fake, and the four paired Ds on (x, E(x)) vs (G(y), y).
E+G step: info(p) + info(c) + 10·bg_adv + bg_class + child_adv + fooling the paired Ds (or, as
an ablation, L1 reconstruction of x through E then G), and, where chosen, the mask-area prior
(not in the reference); the info losses also train the parent D and the child D's info head
(InfoGAN's Q). Eq. 3 adds, for E only, the reprediction of
unconstrained codes from detached G outputs. Then the EMA of G moves.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnm.config import ModelConfig
from mnm.nn import Discriminators, Encoders, Generator, init_weights
from mnm.nn.encoders import KINDS
from mnm.training import losses as L
from mnm.training.ema import make_ema, update_ema
from mnm.training.options import TrainOptions
from mnm.training.trainer import Trainer, image_grid, mask_row, set_requires_grad

GRID_SEED = 0  # the fixed codes of the "generated" rows of every snapshot grid


def encode(encoders: Encoders, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """E(x) as the generator takes it: z as is, b/p/c as softmax probabilities."""
    out = encoders(image)
    return {k: v.float() if k == "z" else v.float().softmax(1) for k, v in out.items()}


class CodeModeTrainer(Trainer):
    """Stage-1 trainer. ``modules()``: generator, generator_ema, encoders, discriminators."""

    def __init__(self, cfg: ModelConfig, options: TrainOptions, device: str | torch.device | None = None):
        super().__init__(cfg, options, device)
        self.generator = init_weights(Generator(cfg)).to(self.device)
        self.encoders = init_weights(Encoders(cfg)).to(self.device)
        self.discriminators = init_weights(Discriminators(cfg)).to(self.device)
        self.generator_ema = make_ema(self.generator)
        d = self.discriminators
        # Trained by the D step; frozen (no grads) during the E+G step.
        self.adversarial_params = [
            *d.background.parameters(), *d.child.trunk.parameters(), *d.child.real_fake.parameters(),
            *(d.paired.parameters() if options.paired_adv else ()),
        ]
        self._optimizers = {
            "generator": self.adam(self.generator.parameters(), options.lr),
            "encoders": self.adam(self.encoders.parameters(), options.lr),
            "discriminators": self.adam(self.adversarial_params, options.lr),
            "info": self.adam([*d.parent.parameters(), *d.child.info.parameters()], options.lr),
        }

    def modules(self) -> dict[str, nn.Module]:
        return {
            "generator": self.generator,
            "generator_ema": self.generator_ema,
            "encoders": self.encoders,
            "discriminators": self.discriminators,
        }

    # -- one step ---------------------------------------------------------------------------

    def train_step(self, batch: dict[str, torch.Tensor], rng: np.random.Generator) -> dict[str, float]:
        """One D step and one E+G step on ``batch`` (object, background, box); every random
        draw comes from ``rng``. Returns each loss term as a float."""
        x = batch["object"].to(self.device, torch.float32)
        real_bg = batch["background"].to(self.device, torch.float32)
        n, opts = len(x), self.options
        for module in (self.generator, self.encoders, self.discriminators):
            module.train()
        with self.seeded(rng):
            codes = self.codes(n, rng, constrained=True)
            repred = self.reprediction_codes(n, rng) if opts.code_repred else None
            with self.autocast():
                fake = self.generator(**codes)
                encoded = encode(self.encoders, x)
            fake_bg = self._background_input(fake["background"], real_bg.shape[-1])

            d_terms = self._discriminator_terms(x, real_bg, batch["box"], fake, fake_bg, encoded, codes)
            stats = L.check_finite("discriminator", d_terms)
            self._step(["discriminators"], self._discriminator_total(d_terms))

            set_requires_grad(self.adversarial_params, False)  # E+G step: no grads for the Ds
            try:
                ge_terms = self._generator_terms(x, fake, fake_bg, encoded, codes)
                if repred is not None:
                    ge_terms.update(self.code_reprediction(repred))
                stats.update(L.check_finite("generator", ge_terms))
                self._step(["generator", "encoders", "info"], self._generator_total(ge_terms))
            finally:
                set_requires_grad(self.adversarial_params, True)
        update_ema(self.generator_ema, self.generator, opts.ema_decay)
        return stats

    def _step(self, names: list[str], loss: torch.Tensor) -> None:
        for name in names:
            self._optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        for name in names:
            self._optimizers[name].step()

    @staticmethod
    def _background_input(background: torch.Tensor, side: int) -> torch.Tensor:
        """The generated background at the background D's input side (the real crop's)."""
        if background.shape[-1] == side:
            return background
        return F.interpolate(background, size=(side, side), mode="bilinear", align_corners=False)

    def _discriminator_terms(self, x, real_bg, box, fake, fake_bg, encoded, codes) -> dict[str, torch.Tensor]:
        d, opts = self.discriminators, self.options
        with self.autocast():
            real_rf, real_cls = d.background(real_bg)
            fake_rf, _ = d.background(fake_bg.detach())
            patches = d.background.object_patches(box.to(self.device), real_bg.shape[-1])
            terms = L.background_d_losses(real_rf, real_cls, fake_rf, patches)
            terms["d_child_real"] = L.bce(d.child(x)[0], 1.0)
            terms["d_child_fake"] = L.bce(d.child(fake["image"].detach())[0], 0.0)
            if not opts.paired_adv:
                return terms
            fake_image = fake["image"].detach()
            for kind in KINDS:
                pair_d = d.paired[kind]
                real_pair, fake_pair = (x, encoded[kind].detach()), (fake_image, codes[kind])
                real_out, fake_out = pair_d(*real_pair), pair_d(*fake_pair)
                terms[f"d_pair_{kind}"] = L.pair_d_loss(opts.pair_loss, real_out, fake_out)
                if opts.pair_loss == "wgan-gp":
                    alpha = torch.rand(len(x), device=self.device)
                    terms[f"gp_{kind}"] = L.gradient_penalty(pair_d, real_pair, fake_pair, alpha)
        return terms

    def _discriminator_total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        total = L.BG_WEIGHT * (terms["d_bg_real"] + terms["d_bg_fake"]) + terms["d_bg_class"]
        total = total + terms["d_child_real"] + terms["d_child_fake"]
        for kind in KINDS if self.options.paired_adv else ():
            total = total + terms[f"d_pair_{kind}"]
            if self.options.pair_loss == "wgan-gp":
                total = total + self.options.gp_weight * terms[f"gp_{kind}"]
        return total

    def _generator_terms(self, x, fake, fake_bg, encoded, codes) -> dict[str, torch.Tensor]:
        d, opts = self.discriminators, self.options
        with self.autocast():
            bg_rf, bg_cls = d.background(fake_bg)
            terms = {"g_bg_adv": L.bce(bg_rf, 1.0), "g_bg_class": L.bce(bg_cls, 1.0)}
            terms["g_child_adv"] = L.bce(d.child(fake["image"])[0], 1.0)
            parent_logits = d.parent(fake["parent_foreground"] * fake["parent_mask"])
            child_logits = d.child(fake["child_foreground"] * fake["child_mask"])[1]
            terms["info_p"] = F.cross_entropy(parent_logits.float(), codes["p"].argmax(1))
            terms["info_c"] = F.cross_entropy(child_logits.float(), codes["c"].argmax(1))
            if opts.mask_max_area < 1.0:
                terms["mask_prior"] = L.mask_area_prior([fake["parent_mask"], fake["child_mask"]], opts.mask_max_area)
            if opts.paired_adv:
                for kind in KINDS:
                    real_out = d.paired[kind](x, encoded[kind])
                    fake_out = d.paired[kind](fake["image"], codes[kind])
                    terms[f"g_pair_{kind}"] = L.pair_fool_loss(opts.pair_loss, real_out, fake_out)
            else:
                recon = self.generator(**encoded)["image"]
                terms["recon_l1"] = F.l1_loss(recon.float(), x)
        return terms

    def _generator_total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        total = terms["info_p"] + terms["info_c"] + L.BG_WEIGHT * terms["g_bg_adv"] + terms["g_bg_class"]
        total = total + terms["g_child_adv"]
        if "mask_prior" in terms:
            total = total + self.options.mask_prior_weight * terms["mask_prior"]
        for name, value in terms.items():
            if name.startswith(("g_pair_", "recon_")):
                total = total + value
            elif name.startswith("repred_"):
                total = total + L.REPRED_WEIGHTS[name[-1]] * value
        return total

    def reprediction_codes(self, n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Codes for Eq. 3: unconstrained (any b, p, c together), or constrained as an ablation."""
        return self.codes(n, rng, constrained=self.options.repred_with_constraints)

    def code_reprediction(self, codes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Eq. 3 terms for ``codes``: E re-predicts them from G(codes), G's output detached, so
        only the encoders get its gradient."""
        with torch.no_grad(), self.autocast():
            images = self.generator(**codes)["image"]
        with self.autocast():
            predicted = self.encoders(images.detach())
        return L.code_reprediction(predicted, codes)

    # -- snapshots --------------------------------------------------------------------------

    @torch.no_grad()
    def sample_grid(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """Columns = the batch. Rows: real input; from its encoded codes (z_bg = z_pose = E_z(x))
        the background, parent composite, final image, parent mask, child mask; then background,
        parent composite and final image from fixed constrained codes. Uses generator_ema."""
        x = batch["object"].to(self.device, torch.float32)
        training = self.encoders.training
        self.encoders.eval()
        try:
            recon = self.generator_ema(**encode(self.encoders, x))
        finally:
            self.encoders.train(training)
        sampled = self.generator_ema(**self.codes(len(x), np.random.default_rng(GRID_SEED), True))
        return image_grid([
            x, recon["background"], recon["parent_image"], recon["image"],
            mask_row(recon["parent_mask"]), mask_row(recon["child_mask"]),
            sampled["background"], sampled["parent_image"], sampled["image"],
        ])
