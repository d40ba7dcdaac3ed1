"""Every loss term against a hand computation: its formula and sign on fixed tensors, its weight in
the total each optimiser descends, and which networks its gradient reaches.

The numbers written out here (10 for the background, 5/5/10/10 for reprediction, 10 for the
gradient penalty, 1 for the feature-mode terms) are the reference's; a changed weight, a flipped
label or sign, or a lost or added ``detach`` fails one of these tests.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnm.config import background_input_size
from mnm.nn.encoders import KINDS
from mnm.training import losses as L
from mnm.training.code_mode import encode
from tests.training.test_steps import CFG, N, code_trainer, feature_trainer, make_batch


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def value(t: torch.Tensor) -> float:
    return float(t.detach())


# -- the formulas, on fixed tensors ---------------------------------------------------------


def test_log_loss_of_logits_against_real_and_fake_labels():
    logits = torch.tensor([0.0, 2.0, -1.0])
    # label 1: -log sigmoid(x) = softplus(-x); label 0: -log(1 - sigmoid(x)) = softplus(x)
    assert value(L.bce(logits, 1.0)) == pytest.approx((softplus(0) + softplus(-2) + softplus(1)) / 3)
    assert value(L.bce(logits, 0.0)) == pytest.approx((softplus(0) + softplus(2) + softplus(-1)) / 3)


def test_paired_objectives_and_their_signs():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 6.0])  # means 2 and 4
    # WGAN critic: it descends mean D(fake) - mean D(real), so it scores encoder pairs high
    assert value(L.pair_d_loss("wgan-gp", real, fake)) == pytest.approx(4 - 2)
    # E and G descend the opposite: E wants its pairs scored low, G its pairs high
    assert value(L.pair_fool_loss("wgan-gp", real, fake)) == pytest.approx(2 - 4)
    bce_d = (softplus(-1) + softplus(-3)) / 2 + (softplus(2) + softplus(6)) / 2  # real→1, fake→0
    bce_fool = (softplus(1) + softplus(3)) / 2 + (softplus(-2) + softplus(-6)) / 2  # labels swapped
    assert value(L.pair_d_loss("bce", real, fake)) == pytest.approx(bce_d)
    assert value(L.pair_fool_loss("bce", real, fake)) == pytest.approx(bce_fool)


class HalfSquare(torch.nn.Module):
    """D(image, code) = ½ (|image|² + |code|²): its gradient at a point is the point itself."""

    def forward(self, image, code):
        return 0.5 * (image.pow(2).flatten(1).sum(1) + code.pow(2).sum(1))


def test_gradient_penalty_at_the_interpolate_of_image_and_code_together():
    real = (torch.tensor([[[[3.0, 0.0]]], [[[0.0, 0.0]]]]), torch.tensor([[0.0, 0.0], [4.0, 0.0]]))
    fake = (torch.tensor([[[[0.0, 0.0]]], [[[0.0, 2.0]]]]), torch.tensor([[0.0, 4.0], [0.0, 0.0]]))
    alpha = torch.tensor([0.5, 0.25])  # alpha = 1 is the real pair
    # sample 0: image (1.5, 0), code (0, 2): |∇| = 2.5; sample 1: image (0, 1.5), code (1, 0): |∇| = √3.25
    expected = ((2.5 - 1) ** 2 + (math.sqrt(3.25) - 1) ** 2) / 2
    assert value(L.gradient_penalty(HalfSquare(), real, fake, alpha)) == pytest.approx(expected, rel=1e-5)


def test_code_reprediction_is_l1_for_z_and_cross_entropy_for_b_p_c():
    codes = {"z": torch.tensor([[1.0, -1.0]]), "b": torch.tensor([[0.0, 1.0]]),
             "p": torch.tensor([[1.0, 0.0, 0.0]]), "c": torch.tensor([[0.0, 0.0, 1.0]])}
    predicted = {"z": torch.tensor([[0.5, 1.0]]), "b": torch.tensor([[0.0, 0.0]]),
                 "p": torch.tensor([[2.0, 0.0, 0.0]]), "c": torch.tensor([[1.0, 1.0, 1.0]])}
    terms = L.code_reprediction(predicted, codes)
    assert value(terms["repred_z"]) == pytest.approx((0.5 + 2.0) / 2)
    assert value(terms["repred_b"]) == pytest.approx(math.log(2))
    assert value(terms["repred_p"]) == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 2)))
    assert value(terms["repred_c"]) == pytest.approx(math.log(3))


def test_background_fake_term_labels_every_generated_patch_fake():
    patches = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    fake = torch.tensor([[[[1.0, -1.0], [0.0, 2.0]]]])
    terms = L.background_d_losses(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), fake, patches)
    assert value(terms["d_bg_fake"]) == pytest.approx((softplus(1) + softplus(-1) + softplus(0) + softplus(2)) / 4)


# -- the weights in each total --------------------------------------------------------------


def powers_of_two(names) -> dict[str, torch.Tensor]:
    """Distinct powers of two: any change in any coefficient changes the total."""
    return {name: torch.tensor(float(2**i)) for i, name in enumerate(names)}


def test_discriminator_total_weighs_the_background_10_and_the_gradient_penalty_10():
    trainer = code_trainer()
    t = powers_of_two(["d_bg_real", "d_bg_fake", "d_bg_class", "d_child_real", "d_child_fake",
                       *(f"d_pair_{k}" for k in KINDS), *(f"gp_{k}" for k in KINDS)])
    expected = (10 * (t["d_bg_real"] + t["d_bg_fake"]) + t["d_bg_class"] + t["d_child_real"] + t["d_child_fake"]
                + sum(t[f"d_pair_{k}"] + 10 * t[f"gp_{k}"] for k in KINDS))
    assert value(trainer._discriminator_total(t)) == value(expected)
    bce = code_trainer(pair_loss="bce")  # no penalty with the log loss
    t_bce = {k: v for k, v in t.items() if not k.startswith("gp_")}
    assert value(bce._discriminator_total(t_bce)) == value(expected - 10 * sum(t[f"gp_{k}"] for k in KINDS))


def test_generator_total_weighs_background_10_and_reprediction_5_5_10_10():
    trainer = code_trainer(mask_max_area=0.3)
    t = powers_of_two(["info_p", "info_c", "g_bg_adv", "g_bg_class", "g_child_adv", "mask_prior",
                       *(f"g_pair_{k}" for k in KINDS), *(f"repred_{k}" for k in KINDS)])
    expected = (t["info_p"] + t["info_c"] + 10 * t["g_bg_adv"] + t["g_bg_class"] + t["g_child_adv"]
                + 10 * t["mask_prior"] + sum(t[f"g_pair_{k}"] for k in KINDS)
                + 5 * t["repred_z"] + 5 * t["repred_b"] + 10 * t["repred_p"] + 10 * t["repred_c"])
    assert value(trainer._generator_total(t)) == value(expected)
    ablation = code_trainer(paired_adv=False)  # L1 reconstruction in place of the paired Ds, weight 1
    t_recon = {k: v for k, v in t.items() if not k.startswith(("g_pair_", "mask_"))} | {"recon_l1": torch.tensor(3.0)}
    assert value(ablation._generator_total(t_recon)) == value(
        expected - 10 * t["mask_prior"] - sum(t[f"g_pair_{k}"] for k in KINDS) + 3)


def test_feature_mode_totals_weigh_each_term_1():
    trainer = feature_trainer()
    assert value(trainer._extractor_total({"s_adv": torch.tensor(2.0), "s_l1": torch.tensor(5.0)})) == 7.0
    assert value(trainer._extractor_total({"s_l1": torch.tensor(5.0)})) == 5.0
    assert value(trainer._feature_d_total({"d_feature_real": torch.tensor(2.0),
                                           "d_feature_fake": torch.tensor(5.0)})) == 7.0


# -- the terms a trainer builds, recomputed by hand -----------------------------------------


@pytest.fixture(scope="module")
def forward():
    """A code-mode trainer with its Ds in eval mode (no input noise: outputs can be recomputed) and
    one forward pass: real batch, constrained codes, G(codes), E(x)."""
    trainer = code_trainer()
    trainer.discriminators.eval()
    batch = make_batch(3)
    x, real_bg = batch["object"], batch["background"]
    codes = trainer.codes(N, np.random.default_rng(0), constrained=True)
    fake = trainer.generator(**codes)
    fake_bg = trainer._background_input(fake["background"], real_bg.shape[-1])
    return trainer, x, real_bg, batch["box"], codes, fake, fake_bg, encode(trainer.encoders, x)


def test_discriminator_terms_equal_a_hand_computation(forward):
    trainer, x, real_bg, box, codes, fake, fake_bg, encoded = forward
    d = trainer.discriminators
    torch.manual_seed(0)  # the gradient-penalty interpolation draws alpha
    terms = trainer._discriminator_terms(x, real_bg, box, fake, fake_bg, encoded, codes)
    with torch.no_grad():
        assert value(terms["d_bg_fake"]) == pytest.approx(value(F.softplus(d.background(fake_bg)[0]).mean()))
        assert value(terms["d_child_real"]) == pytest.approx(value(F.softplus(-d.child(x)[0]).mean()))
        assert value(terms["d_child_fake"]) == pytest.approx(value(F.softplus(d.child(fake["image"])[0]).mean()))
        for kind in KINDS:
            real_score = d.paired[kind](x, encoded[kind]).mean()  # (x, E(x)) is the critic's real pair
            fake_score = d.paired[kind](fake["image"], codes[kind]).mean()
            assert value(terms[f"d_pair_{kind}"]) == pytest.approx(value(fake_score - real_score), abs=1e-6)
    torch.manual_seed(0)
    alpha = torch.rand(N)  # the first draw, as in the step
    for kind in KINDS:
        gp = L.gradient_penalty(d.paired[kind], (x, encoded[kind]), (fake["image"], codes[kind]), alpha)
        assert value(terms[f"gp_{kind}"]) == pytest.approx(value(gp), rel=1e-5)
        alpha = torch.rand(N)


def test_generator_terms_equal_a_hand_computation(forward):
    trainer, x, _, _, codes, fake, fake_bg, encoded = forward
    d = trainer.discriminators
    terms = trainer._generator_terms(x, fake, fake_bg, encoded, codes)
    with torch.no_grad():
        rf, cls = d.background(fake_bg)
        assert value(terms["g_bg_adv"]) == pytest.approx(value(F.softplus(-rf).mean()))  # G wants "real"
        assert value(terms["g_bg_class"]) == pytest.approx(value(F.softplus(-cls).mean()))  # ... and "background"
        assert value(terms["g_child_adv"]) == pytest.approx(value(F.softplus(-d.child(fake["image"])[0]).mean()))
        parent_logits = d.parent(fake["parent_foreground"] * fake["parent_mask"])
        child_logits = d.child(fake["child_foreground"] * fake["child_mask"])[1]
        p, c = codes["p"].argmax(1), codes["c"].argmax(1)
        assert value(terms["info_p"]) == pytest.approx(value(-parent_logits.log_softmax(1)[range(N), p].mean()))
        assert value(terms["info_c"]) == pytest.approx(value(-child_logits.log_softmax(1)[range(N), c].mean()))
        for kind in KINDS:
            real_score = d.paired[kind](x, encoded[kind]).mean()
            fake_score = d.paired[kind](fake["image"], codes[kind]).mean()
            assert value(terms[f"g_pair_{kind}"]) == pytest.approx(value(real_score - fake_score), abs=1e-6)


def test_feature_terms_equal_a_hand_computation():
    trainer = feature_trainer()
    trainer.feature_d.eval()
    seen = {}

    def recorded(name, original):  # the terms each optimiser descends, passed on unchanged
        def total(terms):
            seen[name] = terms
            return original(terms)
        return total

    for name in ("_feature_d_total", "_extractor_total"):
        setattr(trainer, name, recorded(name, getattr(trainer, name)))
    x = make_batch(4)["object"]
    rng = np.random.default_rng(7)
    before = {k: v.detach().clone() for k, v in trainer.feature_d.state_dict().items()}
    extractor_before = {k: v.detach().clone() for k, v in trainer.extractor.state_dict().items()}
    trainer.train_step({"object": x}, np.random.default_rng(7))
    # the same draws by hand: the step's torch seed, then its codes
    with trainer.seeded(rng):
        codes = trainer.feature_codes(N, rng)
    d, s = type(trainer.feature_d)(CFG), type(trainer.extractor)(CFG)
    d.load_state_dict(before)
    s.load_state_dict(extractor_before)
    with torch.no_grad():
        generated = trainer.generator(**codes)
        phi = generated["shape_feature"]
        d_terms, terms = seen["_feature_d_total"], seen["_extractor_total"]
        assert value(d_terms["d_feature_real"]) == pytest.approx(value(F.softplus(-d(phi)).mean()), rel=1e-5)
        assert value(d_terms["d_feature_fake"]) == pytest.approx(value(F.softplus(d(s(x))).mean()), rel=1e-5)
        assert value(terms["s_l1"]) == pytest.approx(value((s(generated["image"]) - phi).abs().mean()), rel=1e-5)


# -- which networks each gradient reaches ---------------------------------------------------

PARTS = {
    "generator.background": lambda t: t.generator.background,
    "generator.parent": lambda t: t.generator.parent,
    "generator.child": lambda t: t.generator.child,
    **{f"encoders.{k}": (lambda t, k=k: getattr(t.encoders, k)) for k in KINDS},
    "d.background": lambda t: t.discriminators.background,
    "d.parent": lambda t: t.discriminators.parent,
    "d.child.trunk": lambda t: t.discriminators.child.trunk,
    "d.child.real_fake": lambda t: t.discriminators.child.real_fake,
    "d.child.info": lambda t: t.discriminators.child.info,
    **{f"d.paired.{k}": (lambda t, k=k: t.discriminators.paired[k]) for k in KINDS},
}
GENERATOR = {"generator.background", "generator.parent", "generator.child"}


def reached(trainer, loss: torch.Tensor) -> set[str]:
    """The parts whose parameters get a non-zero gradient from ``loss``."""
    for param in trainer.generator.parameters():
        param.grad = None
    for module in (trainer.encoders, trainer.discriminators):
        for param in module.parameters():
            param.grad = None
    loss.backward(retain_graph=True)
    return {name for name, part in PARTS.items()
            if any(p.grad is not None and p.grad.abs().sum() > 0 for p in part(trainer).parameters())}


def test_each_generator_side_term_reaches_the_networks_the_reference_trains_with_it():
    trainer = code_trainer(mask_max_area=0.05)
    batch = make_batch(5)
    codes = trainer.codes(N, np.random.default_rng(1), constrained=True)
    fake = trainer.generator(**codes)
    fake_bg = trainer._background_input(fake["background"], background_input_size(CFG.image_size))
    encoded = encode(trainer.encoders, batch["object"])
    for param in trainer.adversarial_params:  # as the E+G step does
        param.requires_grad_(False)
    terms = trainer._generator_terms(batch["object"], fake, fake_bg, encoded, codes)
    terms.update(trainer.code_reprediction(trainer.reprediction_codes(N, np.random.default_rng(2))))
    expected = {
        "g_bg_adv": {"generator.background"},
        "g_bg_class": {"generator.background"},
        "g_child_adv": GENERATOR,
        "info_p": {"generator.parent", "generator.child", "d.parent"},  # the parent heads live in the child stage
        "info_c": {"generator.parent", "generator.child", "d.child.info"},
        "mask_prior": {"generator.parent", "generator.child"},
        **{f"g_pair_{k}": GENERATOR | {f"encoders.{k}"} for k in KINDS},  # (x, E(x)) and (G(y), y) both fool
        **{f"repred_{k}": {f"encoders.{k}"} for k in KINDS},  # G's images detached: E alone re-predicts
    }
    assert set(terms) == set(expected)
    for name, parts in expected.items():
        assert reached(trainer, terms[name]) == parts, name


def test_each_discriminator_term_reaches_only_its_discriminator():
    trainer = code_trainer()
    batch = make_batch(6)
    codes = trainer.codes(N, np.random.default_rng(1), constrained=True)
    fake = trainer.generator(**codes)
    fake_bg = trainer._background_input(fake["background"], batch["background"].shape[-1])
    encoded = encode(trainer.encoders, batch["object"])
    torch.manual_seed(0)
    terms = trainer._discriminator_terms(batch["object"], batch["background"], batch["box"], fake, fake_bg,
                                         encoded, codes)
    expected = {
        "d_bg_real": {"d.background"}, "d_bg_fake": {"d.background"}, "d_bg_class": {"d.background"},
        "d_child_real": {"d.child.trunk", "d.child.real_fake"}, "d_child_fake": {"d.child.trunk", "d.child.real_fake"},
        **{f"d_pair_{k}": {f"d.paired.{k}"} for k in KINDS},  # G(y) and E(x) detached
        **{f"gp_{k}": {f"d.paired.{k}"} for k in KINDS},
    }
    assert set(terms) == set(expected)
    for name, parts in expected.items():
        got = reached(trainer, terms[name])
        # a WGAN critic's last bias cancels in mean D(fake) − mean D(real): no gradient, still its D
        assert got == parts or (name.startswith("d_pair_") and got <= parts), name


def test_a_real_step_applies_no_discriminator_gradient_in_the_generator_step():
    """Hooks on the real ``train_step``: when the D optimiser steps, G and E hold no gradient (fakes
    and E(x) were detached); when G's steps, the Ds' gradients are still the D step's (frozen)."""
    trainer = code_trainer()
    optimizers = trainer.optimizers()
    snapshots = {}

    def snapshot(name):
        def hook(optimizer, args, kwargs):
            snapshots[name] = {part: [None if p.grad is None else p.grad.clone()
                                      for p in PARTS[part](trainer).parameters()] for part in PARTS}
        return hook

    optimizers["discriminators"].register_step_pre_hook(snapshot("d"))
    optimizers["generator"].register_step_pre_hook(snapshot("g"))
    trainer.train_step(make_batch(8), np.random.default_rng(3))
    at_d, at_g = snapshots["d"], snapshots["g"]
    for part in [*GENERATOR, *(f"encoders.{k}" for k in KINDS), "d.parent", "d.child.info"]:
        assert all(g is None for g in at_d[part]), part
    for part in ("d.background", "d.child.trunk", "d.child.real_fake", *(f"d.paired.{k}" for k in KINDS)):
        pairs = zip(at_d[part], at_g[part], strict=True)
        assert all(a is None and b is None or torch.equal(a, b) for a, b in pairs), part
    for part in [*GENERATOR, *(f"encoders.{k}" for k in KINDS)]:
        assert any(g is not None and g.abs().sum() > 0 for g in at_g[part]), part


def test_a_real_feature_step_trains_its_d_on_detached_features_and_s_through_the_frozen_g():
    trainer = feature_trainer()
    grads = {}

    def hook(name):
        def record(optimizer, args, kwargs):
            grads[name] = {
                "extractor": [p.grad for p in trainer.extractor.parameters()],
                "feature_d": [p.grad for p in trainer.feature_d.parameters()],
                "frozen": [p.grad for m in (trainer.generator, trainer.encoders) for p in m.parameters()],
            }
        return record

    for name, optimizer in trainer.optimizers().items():
        optimizer.register_step_pre_hook(hook(name))
    trainer.train_step(make_batch(9), np.random.default_rng(4))
    assert all(g is None for g in grads["feature_d"]["extractor"])  # S(x) detached for the D step
    assert all(g is not None for g in grads["feature_d"]["feature_d"])
    assert all(g is not None for g in grads["extractor"]["extractor"])
    assert all(g is None for step in grads.values() for g in step["frozen"])  # G and E never get one
