"""The training steps of both stages on the tiny preset: losses, which weights move, ablation
switches, determinism, the EMA, and optimiser state round trips.

Batches are built here with numpy: a flat background with a coloured square "object", the
background-D input with its box in a corner so some patches are pure background.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mnm.checkpoint import load_checkpoint, load_state, save_checkpoint, state_tensors
from mnm.codes import parent_of
from mnm.config import PRESETS, background_input_size
from mnm.errors import MnmError
from mnm.training.code_mode import CodeModeTrainer
from mnm.training.feature_mode import FeatureModeTrainer
from mnm.training.losses import NonFiniteLoss, background_d_losses, mask_area_prior
from mnm.training.options import TrainOptions

CFG = PRESETS["tiny"]
N = 2
KINDS = ("z", "b", "p", "c")
D_PAIR_KEYS = {f"d_pair_{k}" for k in KINDS}
GP_KEYS = {f"gp_{k}" for k in KINDS}
G_PAIR_KEYS = {f"g_pair_{k}" for k in KINDS}
REPRED_KEYS = {f"repred_{k}" for k in KINDS}
FINEGAN_KEYS = {
    "d_bg_real", "d_bg_fake", "d_bg_class", "d_child_real", "d_child_fake",
    "g_bg_adv", "g_bg_class", "g_child_adv", "info_p", "info_c",
}


def make_batch(seed: int, n: int = N) -> dict[str, torch.Tensor]:
    """Synthetic-like inputs: a coloured square on a flat background, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    s, b = CFG.image_size, background_input_size(CFG.image_size)
    obj = np.empty((n, 3, s, s), np.float32)
    bg = np.empty((n, 3, b, b), np.float32)
    boxes = np.zeros((n, 4), np.float32)
    for i in range(n):
        back, front = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3)
        obj[i] = back[:, None, None]
        obj[i, :, s // 4: 3 * s // 4, s // 4: 3 * s // 4] = front[:, None, None]
        bg[i] = back[:, None, None] + rng.normal(0, 0.05, (3, b, b))
        x0, y0 = rng.integers(b - 6, b - 3, 2)
        bg[i, :, y0:, x0:] = front[:, None, None]
        boxes[i] = (x0, y0, b, b)
    return {"object": torch.from_numpy(obj), "background": torch.from_numpy(bg.clip(-1, 1)),
            "box": torch.from_numpy(boxes)}


def code_trainer(seed: int = 0, **options) -> CodeModeTrainer:
    torch.manual_seed(seed)
    return CodeModeTrainer(CFG, TrainOptions(**options), "cpu")


def params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    return {k for k, v in module.named_parameters() if not torch.equal(before[k], v.detach())}


@pytest.fixture(scope="module")
def stepped():
    """A code-mode trainer after two steps, with the state before each step."""
    trainer = code_trainer()
    initial = {name: params(m) for name, m in trainer.modules().items()}
    first = trainer.train_step(make_batch(1), np.random.default_rng(10))
    ema_before = params(trainer.generator_ema)
    second = trainer.train_step(make_batch(2), np.random.default_rng(11))
    return trainer, initial, ema_before, [first, second]


# -- options --------------------------------------------------------------------------------


def test_options_json_round_trip_and_validation():
    options = TrainOptions(lr=1e-4, betas=(0.0, 0.9), pair_loss="bce", paired_adv=False, amp=True)
    data = json.loads(json.dumps(options.to_dict()))
    assert TrainOptions.from_dict(data) == options
    assert TrainOptions.from_dict({}) == TrainOptions()
    assert TrainOptions.from_dict({"lr": 1}).lr == 1.0
    for bad in ({"learning_rate": 1e-4}, {"paired_adv": "no"}, {"lr": -1.0}, {"pair_loss": "hinge"},
                {"betas": [0.5]}, {"ema_decay": 1.0}, {"mask_max_area": 0.0}, {"mask_max_area": 1.5},
                {"mask_prior_weight": -1.0}):
        with pytest.raises(MnmError, match="options"):
            TrainOptions.from_dict(bad)
    with pytest.raises(MnmError, match="CUDA"):
        CodeModeTrainer(CFG, TrainOptions(amp=True), "cpu")


# -- code mode ------------------------------------------------------------------------------


def test_code_step_losses_are_finite_with_stable_names(stepped):
    _, _, _, stats = stepped
    expected = FINEGAN_KEYS | D_PAIR_KEYS | GP_KEYS | G_PAIR_KEYS | REPRED_KEYS
    for step in stats:
        assert set(step) == expected
        assert all(isinstance(v, float) and np.isfinite(v) for v in step.values())
    assert stats[0]["d_bg_real"] > 0  # the corner box leaves background patches in the real term


def test_code_step_moves_every_trained_network(stepped):
    trainer, initial, _, _ = stepped
    for name in ("generator", "encoders"):
        module = trainer.modules()[name]
        assert changed(initial[name], module) == set(initial[name]), name
    d_changed = changed(initial["discriminators"], trainer.discriminators)
    d_all = set(initial["discriminators"])
    # Every stage-1 discriminator (and the info heads trained with G) moves; the feature D is stage 2's.
    # A WGAN critic's last bias gets no gradient (it cancels in mean D(fake) − mean D(real)).
    critic_bias = {f"paired.{k}.joint.2.bias" for k in KINDS}
    assert d_changed == {k for k in d_all if not k.startswith("feature.")} - critic_bias
    assert not any(k.startswith("feature.") for k in d_changed)
    for part in ("background.", "parent.", "child.trunk.", "child.real_fake.", "child.info.",
                 *(f"paired.{k}." for k in KINDS)):
        assert any(k.startswith(part) for k in d_changed), part


def test_ema_follows_decay_math(stepped):
    trainer, _, ema_before, _ = stepped
    decay = trainer.options.ema_decay
    generator = dict(trainer.generator.named_parameters())
    for name, ema in trainer.generator_ema.named_parameters():
        expected = decay * ema_before[name] + (1 - decay) * generator[name].detach()
        torch.testing.assert_close(ema, expected, rtol=0, atol=1e-6)
    assert any(not torch.equal(e, generator[k]) for k, e in trainer.generator_ema.named_parameters())
    buffers = dict(trainer.generator.named_buffers())
    for name, buffer in trainer.generator_ema.named_buffers():
        assert torch.equal(buffer, buffers[name]), name


def test_sample_grid_shape(stepped):
    trainer = stepped[0]
    grid = trainer.sample_grid(make_batch(3, n=3))
    s = CFG.image_size
    assert grid.shape == (9 * s, 3 * s, 3) and grid.dtype == np.uint8
    assert trainer.encoders.training  # the grid's eval mode is undone


def test_reprediction_trains_only_the_encoders():
    trainer = code_trainer()
    codes = trainer.reprediction_codes(N, np.random.default_rng(0))
    generator_before = params(trainer.generator)
    encoders_before = params(trainer.encoders)
    terms = trainer.code_reprediction(codes)
    assert set(terms) == REPRED_KEYS
    for optimizer in trainer.optimizers().values():
        optimizer.zero_grad(set_to_none=True)
    sum(terms.values()).backward()
    assert all(p.grad is None for p in trainer.generator.parameters())
    for kind in KINDS:
        grads = [p.grad for p in getattr(trainer.encoders, kind).parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), kind
    trainer.optimizers()["generator"].step()
    trainer.optimizers()["encoders"].step()
    assert not changed(generator_before, trainer.generator)
    assert changed(encoders_before, trainer.encoders) == set(encoders_before)


def test_reprediction_codes_follow_the_constraint_switch():
    rng = np.random.default_rng(0)
    n = 64

    def constrained_rows(trainer) -> np.ndarray:
        codes = {k: v.argmax(1).numpy() for k, v in trainer.reprediction_codes(n, rng).items() if k != "z"}
        return (codes["b"] == codes["c"]) & (codes["p"] == parent_of(codes["c"], CFG))

    assert constrained_rows(code_trainer(repred_with_constraints=True)).all()
    assert not constrained_rows(code_trainer()).all()


@pytest.mark.parametrize(
    ("options", "present", "absent"),
    [
        ({"paired_adv": False}, {"recon_l1"} | REPRED_KEYS, D_PAIR_KEYS | GP_KEYS | G_PAIR_KEYS),
        ({"code_repred": False}, D_PAIR_KEYS | GP_KEYS | G_PAIR_KEYS, REPRED_KEYS | {"recon_l1"}),
        ({"pair_loss": "bce"}, D_PAIR_KEYS | G_PAIR_KEYS | REPRED_KEYS, GP_KEYS | {"recon_l1"}),
    ],
)
def test_ablation_switches_change_the_losses(options, present, absent):
    trainer = code_trainer(**options)
    paired_before = params(trainer.discriminators.paired)
    stats = trainer.train_step(make_batch(1), np.random.default_rng(0))
    assert FINEGAN_KEYS | present <= set(stats)
    assert not absent & set(stats)
    assert all(np.isfinite(v) for v in stats.values())
    assert bool(changed(paired_before, trainer.discriminators.paired)) == options.get("paired_adv", True)


def test_mask_area_prior_is_a_hinge_on_each_masks_mean():
    small, large = torch.full((2, 1, 8, 8), 0.2), torch.full((2, 1, 8, 8), 0.7)
    assert mask_area_prior([small, small], 0.25).item() == 0.0
    assert mask_area_prior([small, large], 0.25).item() == pytest.approx(0.45)
    large.requires_grad_(True)
    mask_area_prior([large], 0.25).backward()
    assert (large.grad > 0).all()  # descending the prior shrinks the mask


def test_mask_prior_is_off_by_default_and_shrinks_the_masks_when_on():
    def trained_mask_area(**options):
        trainer = code_trainer(**options)  # same seed: the same weights and batches either way
        for step in range(3):
            stats = trainer.train_step(make_batch(step), np.random.default_rng(step))
        with torch.no_grad():
            fake = trainer.generator(**trainer.codes(8, np.random.default_rng(5), constrained=True))
        return stats, (fake["parent_mask"].mean() + fake["child_mask"].mean()).item()

    stats_off, area_off = trained_mask_area()
    stats_on, area_on = trained_mask_area(mask_max_area=0.05, mask_prior_weight=100.0)
    assert "mask_prior" not in stats_off and stats_on["mask_prior"] > 0
    assert area_on < area_off


def test_same_rng_gives_identical_weights_whatever_torch_global_state():
    first, second = code_trainer(), code_trainer()
    torch.manual_seed(123)
    for step in range(2):
        first.train_step(make_batch(step), np.random.default_rng(step))
    after_one = None
    for step in range(2):
        torch.manual_seed(1000 + step)  # the trainer must not depend on torch's global RNG ...
        global_state = torch.get_rng_state()
        second.train_step(make_batch(step), np.random.default_rng(step))
        assert torch.equal(torch.get_rng_state(), global_state)  # ... nor advance it
        if after_one is None:
            after_one = state_tensors(second.modules())
    a, b = state_tensors(first.modules()), state_tensors(second.modules())
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Another rng state for the same step gives other weights: the rng is really used.
    other = code_trainer()
    other.train_step(make_batch(0), np.random.default_rng(99))
    c = state_tensors(other.modules())
    assert any(not torch.equal(c[k], after_one[k]) for k in c)


def test_optimizer_state_round_trips_through_a_checkpoint_and_resumes_exactly(tmp_path):
    trainer = code_trainer()
    trainer.train_step(make_batch(0), np.random.default_rng(0))
    optim = trainer.optimizer_tensors()
    assert {k.split(".")[0] for k in optim} == {"generator", "encoders", "discriminators", "info"}
    tensors = {**state_tensors(trainer.modules()), **{f"optim.{k}": v for k, v in optim.items()}}
    save_checkpoint(tmp_path / "ckpt", tensors, {"step": 1})
    loaded, _ = load_checkpoint(tmp_path / "ckpt")

    resumed = code_trainer(seed=5)  # other initial weights: everything must come from the checkpoint
    load_state(resumed.modules(), loaded, source="ckpt")
    resumed.load_optimizer_tensors({k[6:]: v for k, v in loaded.items() if k.startswith("optim.")})
    again = resumed.optimizer_tensors()
    assert again.keys() == optim.keys()
    assert all(torch.equal(again[k], optim[k]) and again[k].dtype == optim[k].dtype for k in optim)

    batch, seed = make_batch(7), 42
    trainer.train_step(batch, np.random.default_rng(seed))
    resumed.train_step(batch, np.random.default_rng(seed))
    a, b = state_tensors(trainer.modules()), state_tensors(resumed.modules())
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_optimizer_tensors_are_refused_before_anything_loads():
    trainer = code_trainer()
    trainer.train_step(make_batch(0), np.random.default_rng(0))
    optim = trainer.optimizer_tensors()
    fresh = code_trainer()
    with pytest.raises(MnmError, match=r"ckpt: optimiser tensor 'extractor\.0\.exp_avg'"):
        fresh.load_optimizer_tensors({**optim, "extractor.0.exp_avg": torch.zeros(1)}, source="ckpt")
    key = "generator.0.exp_avg"
    with pytest.raises(MnmError, match=r"ckpt: optim\.generator\.0\.exp_avg is \[3\]"):
        fresh.load_optimizer_tensors({**optim, key: torch.zeros(3)}, source="ckpt")
    assert fresh.optimizer_tensors() == {}


def test_background_real_loss_skips_patches_over_the_object():
    # Object patches carry a confident "fake" verdict: if they counted, the real loss would be ~50.
    object_patches = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    object_patches[..., :2, :] = True
    real = torch.where(object_patches, torch.tensor(-50.0), torch.tensor(0.0))
    terms = background_d_losses(real, real, torch.zeros(1, 1, 4, 4), object_patches)
    assert terms["d_bg_real"].item() == pytest.approx(np.log(2))
    # The class head is trained towards 1 on background patches, 0 on object patches.
    assert terms["d_bg_class"].item() == pytest.approx(np.log(2) / 2, rel=1e-5)
    everything = torch.ones_like(object_patches)
    assert background_d_losses(real, real, real, everything)["d_bg_real"].item() == 0.0


def test_non_finite_loss_stops_the_step_before_any_update():
    trainer = code_trainer()
    before = state_tensors(trainer.modules())
    batch = make_batch(0)
    batch["object"][0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLoss) as info:
        trainer.train_step(batch, np.random.default_rng(0))
    assert info.value.step_name == "discriminator" and not np.isfinite(info.value.value)
    assert info.value.loss_name in {"d_child_real", *D_PAIR_KEYS, *GP_KEYS}
    after = state_tensors(trainer.modules())
    assert all(torch.equal(before[k], after[k]) for k in before if "running" not in k and "batches" not in k)


# -- feature mode ---------------------------------------------------------------------------


def feature_trainer(**options) -> FeatureModeTrainer:
    stage1 = code_trainer()
    return FeatureModeTrainer(CFG, TrainOptions(**options), "cpu", stage1.generator_ema, stage1.encoders)


def test_feature_step_trains_s_and_its_d_only():
    trainer = feature_trainer()
    frozen = {**state_tensors({"g": trainer.generator, "e": trainer.encoders})}
    trained = {name: params(m) for name, m in trainer.modules().items()}
    for step in range(2):
        stats = trainer.train_step(make_batch(step), np.random.default_rng(step))
        assert set(stats) == {"d_feature_real", "d_feature_fake", "s_adv", "s_l1"}
        assert all(np.isfinite(v) for v in stats.values())
    for name, module in trainer.modules().items():
        assert changed(trained[name], module) == set(trained[name]), name
    after = state_tensors({"g": trainer.generator, "e": trainer.encoders})
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)  # weights and BN statistics
    assert set(trainer.modules()) == {"extractor", "discriminators.feature"}
    grid = trainer.sample_grid(make_batch(5, n=3))
    assert grid.shape == (5 * CFG.image_size, 3 * CFG.image_size, 3) and grid.dtype == np.uint8


@pytest.mark.parametrize(
    ("options", "keys"),
    [({"feature_l1": False}, {"d_feature_real", "d_feature_fake", "s_adv"}), ({"feature_adv": False}, {"s_l1"})],
)
def test_feature_switches_change_the_losses(options, keys):
    trainer = feature_trainer(**options)
    d_before = params(trainer.feature_d)
    stats = trainer.train_step(make_batch(0), np.random.default_rng(0))
    assert set(stats) == keys
    assert bool(changed(d_before, trainer.feature_d)) == options.get("feature_adv", True)


def test_feature_codes_follow_the_option():
    rng, n = np.random.default_rng(0), 8

    def draws(trainer, batches):
        return [{k: v.numpy() for k, v in trainer.feature_codes(n, rng).items()} for _ in range(batches)]

    for codes in draws(feature_trainer(), 20):  # the default: constrained, one-hot
        c = codes["c"].argmax(1)
        assert (codes["b"].argmax(1) == c).all() and (codes["p"].argmax(1) == parent_of(c, CFG)).all()
        assert (codes["p"].max(1) == 1).all()
    reference = draws(feature_trainer(feature_codes="reference"), 300)
    soft = [codes for codes in reference if (codes["p"].max(1) < 1).all()]
    hard = [codes for codes in reference if (codes["p"].max(1) == 1).all()]
    assert len(soft) + len(hard) == 300  # a batch is soft or one-hot as a whole
    assert 0.13 < len(soft) / 300 < 0.27  # 20 % of the batches
    for codes in soft:
        np.testing.assert_allclose(codes["p"].sum(1), 1, rtol=1e-5)
        assert (codes["p"] > 0).all() and (codes["b"].max(1) == 1).all() and (codes["c"].max(1) == 1).all()
    rows = np.concatenate([np.stack([c["b"].argmax(1), c["p"].argmax(1), c["c"].argmax(1)], 1) for c in hard])
    assert (rows[:, 0] == rows[:, 2]).mean() < 0.5  # b, p, c independent: most rows break the constraints
    assert (rows[:, 1] == parent_of(rows[:, 2], CFG)).mean() < 0.75
    assert len({tuple(r) for r in rows}) > 20


def test_feature_stage_needs_a_loss():
    with pytest.raises(MnmError, match="nothing trains S"):
        feature_trainer(feature_l1=False, feature_adv=False)
