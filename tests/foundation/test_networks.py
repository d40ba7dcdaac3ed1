"""Every network at tiny and paper scale: shapes, ranges, batch sizes, determinism, sizes, export."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from mnm.config import PRESETS, ModelConfig
from mnm.nn import (
    BackgroundD,
    ChildD,
    Discriminators,
    Encoder,
    Encoders,
    FeatureD,
    FeatureExtractor,
    Generator,
    Networks,
    PairedD,
    ParentInfoD,
    background_input_size,
    build_networks,
    init_weights,
)
from mnm.nn.blocks import CodeConv3x3

KINDS = ("z", "b", "p", "c")


def _codes(cfg: ModelConfig, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """z ~ N(0, 1); b, p one-hot; c soft (the networks must accept soft codes)."""
    def onehot(k: int) -> torch.Tensor:
        return torch.eye(k)[torch.randint(0, k, (n,), generator=gen)]

    z = torch.randn(n, cfg.z_dim, generator=gen)
    c = torch.softmax(3 * torch.randn(n, cfg.n_child, generator=gen), dim=1)
    return {"z": z, "b": onehot(cfg.n_bg), "p": onehot(cfg.n_parent), "c": c}


def _image(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=gen) * 2 - 1


@pytest.fixture(scope="module", params=["tiny", "paper"])
def nets(request):
    """Eval-mode networks; paper-scale ones keep PyTorch's default init (orthogonal init of the
    big encoder convs is slow and tested at tiny)."""
    cfg = PRESETS[request.param]
    torch.manual_seed(0)
    return cfg, {
        "generator": Generator(cfg).eval(),
        "encoders": Encoders(cfg).eval(),
        "extractor": FeatureExtractor(cfg).eval(),
        "discriminators": Discriminators(cfg).eval(),
    }


def _in_range(t: torch.Tensor, lo: float, hi: float) -> bool:
    return bool(torch.isfinite(t).all() and t.min() >= lo and t.max() <= hi)


@pytest.mark.parametrize("n", [1, 5])
def test_generator_shapes_and_ranges(nets, n):
    cfg, m = nets
    s, f = cfg.image_size, cfg.feature_channels
    codes = _codes(cfg, n, torch.Generator().manual_seed(n))
    with torch.no_grad():
        out = m["generator"](**codes)
    expected = {
        "image": 3, "child_mask": 1, "child_foreground": 3, "parent_image": 3, "parent_mask": 1,
        "parent_foreground": 3, "background": 3, "shape_feature": f,
    }
    assert set(out) == set(expected)
    for key, channels in expected.items():
        assert out[key].shape == (n, channels, s, s), key
    for key in ("image", "child_foreground", "parent_image", "parent_foreground", "background"):
        assert _in_range(out[key], -1, 1), key
    for key in ("child_mask", "parent_mask"):
        assert _in_range(out[key], 0, 1), key
    # The composition is what the docs say it is.
    m_p, m_c = out["parent_mask"], out["child_mask"]
    parent = out["parent_foreground"] * m_p + out["background"] * (1 - m_p)
    torch.testing.assert_close(out["parent_image"], parent)
    torch.testing.assert_close(out["image"], out["child_foreground"] * m_c + parent * (1 - m_c))


@pytest.mark.parametrize("n", [1, 5])
def test_encoders_and_extractor(nets, n):
    cfg, m = nets
    image = _image(n, cfg.image_size, torch.Generator().manual_seed(n))
    with torch.no_grad():
        codes = m["encoders"](image)
        z, features = m["encoders"].z(image, return_features=True)
        feature = m["extractor"](image)
    assert {k: tuple(v.shape) for k, v in codes.items()} == {k: (n, d) for k, d in cfg.code_dims().items()}
    assert _in_range(codes["z"], -4, 4)
    assert all(torch.isfinite(v).all() for v in codes.values())
    torch.testing.assert_close(z, codes["z"])
    assert features.shape == (n, 8 * cfg.ndf * 16)
    assert feature.shape == (n, cfg.feature_channels, cfg.image_size, cfg.image_size)
    assert torch.isfinite(feature).all()


@pytest.mark.parametrize("n", [1, 5])
def test_discriminators(nets, n):
    cfg, m = nets
    d = m["discriminators"]
    gen = torch.Generator().manual_seed(n)
    image = _image(n, cfg.image_size, gen)
    side_in = background_input_size(cfg.image_size)
    codes = _codes(cfg, n, gen)
    phi = torch.randn(n, cfg.feature_channels, cfg.image_size, cfg.image_size, generator=gen)
    with torch.no_grad():
        real_fake, bg_object = d.background(_image(n, side_in, gen))
        parent_info = d.parent(image)
        child_rf, child_info = d.child(image)
        paired = {k: d.paired[k](image, codes[k]) for k in KINDS}
        feature_rf = d.feature(phi)
    side = d.background.patch_geometry(side_in)[2]
    assert real_fake.shape == bg_object.shape == (n, 1, side, side)
    assert feature_rf.shape == (n, 1, side, side)
    assert parent_info.shape == (n, cfg.n_parent)
    assert child_rf.shape == (n,) and child_info.shape == (n, cfg.n_child)
    assert all(v.shape == (n,) for v in paired.values())
    # Logits, not probabilities: a sigmoid head would keep every value in (0, 1).
    outs = [real_fake, bg_object, child_rf, feature_rf, *paired.values()]
    assert any(bool((t < 0).any()) or bool((t > 1).any()) for t in outs)


def test_eval_mode_is_deterministic(nets):
    cfg, m = nets
    gen = torch.Generator().manual_seed(7)
    codes, image = _codes(cfg, 2, gen), _image(2, cfg.image_size, gen)
    runs = []
    for _ in range(2):
        with torch.no_grad():
            g = m["generator"](**codes)
            e = m["encoders"](image)
            paired = m["discriminators"].paired["c"](image, codes["c"])
            runs.append([g["image"], g["shape_feature"], *e.values(), m["extractor"](image), paired])
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)


def test_paired_d_noise_only_in_training():
    cfg = PRESETS["tiny"]
    d = PairedD(cfg, "p")
    gen = torch.Generator().manual_seed(3)
    image, code = _image(4, cfg.image_size, gen), torch.eye(cfg.n_parent)[[0, 1, 0, 1]]
    with torch.no_grad():
        d.train()
        assert not torch.equal(d(image, code), d(image, code))
        d.eval()
        assert torch.equal(d(image, code), d(image, code))


def test_z_pose_drives_only_the_shape_feature():
    cfg = PRESETS["tiny"]
    g = Generator(cfg).eval()
    codes = _codes(cfg, 3, torch.Generator().manual_seed(1))
    other = torch.randn(3, cfg.z_dim)
    with torch.no_grad():
        same = g(**codes)
        explicit = g(**codes, z_pose=codes["z"])
        moved = g(**codes, z_pose=other)
        direct = g.parent(other, codes["p"])
    torch.testing.assert_close(same["image"], explicit["image"])
    torch.testing.assert_close(moved["background"], same["background"])
    torch.testing.assert_close(moved["shape_feature"], direct)
    assert not torch.allclose(moved["shape_feature"], same["shape_feature"])


@pytest.mark.parametrize("size", [32, 64, 256])
def test_every_power_of_two_size_builds_and_trains(size):
    """Narrow widths keep this fast; train mode (batch statistics) with a backward pass."""
    cfg = dataclasses.replace(PRESETS["tiny"], image_size=size, ngf=8, ndf=8).validate()
    gen = torch.Generator().manual_seed(size)
    codes, image = _codes(cfg, 2, gen), _image(2, size, gen)
    g, enc, s = Generator(cfg), Encoder(cfg, "c"), FeatureExtractor(cfg)
    out = g(**codes)
    assert out["image"].shape == (2, 3, size, size)
    assert out["shape_feature"].shape == (2, cfg.feature_channels, size, size)
    assert enc(image).shape == (2, cfg.n_child)
    assert s(image).shape == (2, cfg.feature_channels, size, size)
    bg = BackgroundD(cfg)
    side_in = background_input_size(size)
    rf, bg_o = bg(_image(2, side_in, gen))
    assert rf.shape[-1] == bg.patch_geometry(side_in)[2] >= 1
    assert FeatureD(cfg)(out["shape_feature"]).shape == rf.shape
    assert ParentInfoD(cfg)(image).shape == (2, cfg.n_parent)
    assert ChildD(cfg)(image)[1].shape == (2, cfg.n_child)
    assert PairedD(cfg, "z")(image, codes["z"]).shape == (2,)
    (out["image"].mean() + rf.mean()).backward()
    assert g.child.joint.conv.weight.grad is not None and g.child.joint.conv.weight.grad.abs().sum() > 0


def test_paper_channel_schedule():
    """docs/networks.md at S=128, ngf=64: the exact widths of every stage."""
    g = Generator(PRESETS["paper"])

    def ups(stem):
        return [stem.channels] + [blk[1].out_channels // 2 for blk in stem.up]

    assert ups(g.background.stem) == [512, 256, 128, 64, 64, 32]
    assert ups(g.parent.stem) == [512, 256, 128, 64, 16, 16]
    assert g.parent.joint.conv.weight.shape == (32, 16 + 20, 3, 3)
    assert [r.block[0].in_channels for r in g.parent.residual] == [16, 16, 16]
    assert g.child.joint.conv.weight.shape == (64, 200 + 16, 3, 3)
    assert [r.block[0].in_channels for r in g.child.residual] == [32, 32]
    assert g.child.same[0].out_channels == 32  # sameBlock → 16 after the GLU
    s = FeatureExtractor(PRESETS["paper"])
    assert [blk[0].out_channels // 2 for blk in s.first] == [32, 32]
    assert [d[0].out_channels // 2 for d in s.down] == [32, 64, 128, 256, 512, 512]
    assert [u[0].out_channels // 2 for u in s.up] == [256, 512, 256, 128, 64, 16]
    enc = Encoder(PRESETS["paper"], "p")
    convs = [m for m in enc.trunk.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1024, 512, 512]


def _support(patch_d: BackgroundD, input_size: int, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the input that output patch (i, j) depends on (by its gradient)."""
    x = torch.randn(1, 3, input_size, input_size, requires_grad=True)
    patch_d(x)[0][0, 0, i, j].backward()
    nonzero = x.grad[0].abs().sum(0) > 0
    return np.flatnonzero(nonzero.any(1).numpy()), np.flatnonzero(nonzero.any(0).numpy())


@pytest.mark.parametrize("preset,expected", [("paper", (34, 4, 24)), ("tiny", (9, 1, 23))])
def test_background_d_receptive_field(preset, expected):
    cfg = PRESETS[preset]
    d = BackgroundD(cfg)
    size = background_input_size(cfg.image_size)
    rf, jump, side = d.patch_geometry(size)
    assert (rf, jump, side) == expected  # 126 → 24×24 patches of 34 px at paper, as the reference
    for i, j in [(0, 0), (side - 1, 1), (side // 2, side - 1)]:
        rows, cols = _support(d, size, i, j)
        assert rows.tolist() == list(range(i * jump, i * jump + rf))
        assert cols.tolist() == list(range(j * jump, j * jump + rf))


@pytest.mark.parametrize("preset", ["paper", "tiny"])
def test_object_patches_match_receptive_fields(preset):
    cfg = PRESETS[preset]
    d = BackgroundD(cfg)
    size = background_input_size(cfg.image_size)
    _, _, side = d.patch_geometry(size)
    spans = [_support(d, size, k, k)[0] for k in range(side)]  # input span of patch row/col k
    rng = np.random.default_rng(0)
    boxes = []
    for _ in range(6):
        x0, x1 = sorted(rng.integers(0, size + 1, 2))
        y0, y1 = sorted(rng.integers(0, size + 1, 2))
        boxes.append((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))
    boxes.append((10, 10, 10, 20))  # empty: zero width
    mask = d.object_patches(torch.tensor(boxes), size)
    assert mask.shape == (len(boxes), 1, side, side) and mask.dtype == torch.bool
    for n, (x0, y0, x1, y1) in enumerate(boxes):
        empty = x1 <= x0 or y1 <= y0
        for i in range(side):
            for j in range(side):
                hits_rows = bool(((spans[i] >= y0) & (spans[i] < y1)).any())
                hits_cols = bool(((spans[j] >= x0) & (spans[j] < x1)).any())
                assert bool(mask[n, 0, i, j]) == (hits_rows and hits_cols and not empty), (n, i, j)
    assert not mask[-1].any()


def test_build_networks_and_init():
    cfg = PRESETS["tiny"]
    torch.manual_seed(0)
    nets = build_networks(cfg)
    assert isinstance(nets, Networks)
    assert isinstance(nets.generator, Generator) and isinstance(nets.encoders, Encoders)
    assert isinstance(nets.extractor, FeatureExtractor) and isinstance(nets.discriminators, Discriminators)
    bn_weights = []
    for module in [nets.generator, nets.encoders, nets.extractor, nets.discriminators]:
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, CodeConv3x3)) and not isinstance(m, nn.ConvTranspose2d):
                w = m.weight.detach().reshape(m.weight.shape[0], -1)
                gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
                torch.testing.assert_close(gram, torch.eye(gram.shape[0]), atol=1e-4, rtol=0)
            if getattr(m, "bias", None) is not None:
                assert not m.bias.detach().any()
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                bn_weights.append(m.weight.detach())
    bn = torch.cat(bn_weights)
    assert abs(bn.mean().item() - 1) < 0.01 and 0.01 < bn.std().item() < 0.03


def test_init_weights_changes_default_init():
    layer = nn.Linear(8, 4)
    before = layer.weight.detach().clone()
    init_weights(layer)
    assert not torch.equal(before, layer.weight)
    torch.testing.assert_close(layer.weight @ layer.weight.T, torch.eye(4), atol=1e-5, rtol=0)


class _ChildGraph(nn.Module):
    """The g_child graph returns named tensors; ONNX export wants a tuple."""

    def __init__(self, child):
        super().__init__()
        self.child = child

    def forward(self, shape_feature, c, background):
        out = self.child(shape_feature, c, background)
        return out["image"], out["child_mask"]


def _export_and_compare(module: nn.Module, inputs: dict, outputs: list[str], path, make_inputs):
    """Export with a dynamic batch axis (TorchScript exporter) and compare onnxruntime to torch."""
    module.eval()
    axes = {name: {0: "batch"} for name in [*inputs, *outputs]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, tuple(inputs.values()), str(path), input_names=list(inputs), output_names=outputs,
            dynamic_axes=axes, opset_version=17, dynamo=False,
        )
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 3):
        feeds = make_inputs(n)
        expected = module(*feeds.values())
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run(outputs, {k: v.numpy() for k, v in feeds.items()})
        for e, g in zip(expected, got, strict=True):
            assert g.shape[0] == n
            np.testing.assert_allclose(g, e.detach().numpy(), atol=1e-4, rtol=1e-4)
    return model


def test_onnx_export_with_dynamic_batch(tmp_path):
    # tiny with code sizes no other conv width matches, so the joint convs are recognisable.
    cfg = dataclasses.replace(PRESETS["tiny"], n_parent=3, n_child=12).validate()
    torch.manual_seed(0)
    g = init_weights(Generator(cfg))
    s, dims = cfg.image_size, cfg.code_dims()
    gen = torch.Generator().manual_seed(5)

    def codes(n):
        return _codes(cfg, n, gen)

    def pick(names):
        return lambda n: {k: v for k, v in codes(n).items() if k in names}

    _export_and_compare(g.background, pick("zb")(2), ["background"], tmp_path / "bg.onnx", pick("zb"))
    parent = _export_and_compare(g.parent, pick("zp")(2), ["shape_feature"], tmp_path / "p.onnx", pick("zp"))

    def child_inputs(n):
        return {"shape_feature": torch.randn(n, cfg.feature_channels, s, s, generator=gen),
                "c": codes(n)["c"], "background": _image(n, s, gen)}

    child = _export_and_compare(_ChildGraph(g.child), child_inputs(2), ["image", "child_mask"],
                                tmp_path / "child.onnx", child_inputs)
    for model, code_dim in [(parent, dims["p"]), (child, dims["c"])]:
        # No conv sees the broadcast code: every Conv weight has fewer inputs than code_dim + F.
        weights = {t.name: t.dims for t in model.graph.initializer}
        conv_in = [weights[node.input[1]][1] for node in model.graph.node if node.op_type == "Conv"]
        assert cfg.feature_channels + code_dim not in conv_in

    def images(n):
        return {"image": _image(n, s, gen)}

    for name, module, output in [
        ("enc_z", Encoder(cfg, "z"), "code"),
        ("enc_c", Encoder(cfg, "c"), "code"),
        ("extractor", FeatureExtractor(cfg), "shape_feature"),
    ]:
        _export_and_compare(init_weights(module), images(2), [output], tmp_path / f"{name}.onnx", images)
