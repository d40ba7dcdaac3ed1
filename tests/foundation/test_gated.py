"""The glu_split and fused_heads rewrites of docs/export-rewrites.md equal the blocks they replace."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mnm.config import PRESETS
from mnm.export.rewrites import EXPORT_REWRITES, rewrites_in, rewritten
from mnm.export.rewrites.gated import GatedConv2d, GatedJoint, GatedLinear, GatedPhaseUpsample, rewrite_glus
from mnm.export.rewrites.heads import ImageMaskHeads, fuse_heads
from mnm.export.rewrites.phase import rewrite_up_blocks
from mnm.nn import FeatureExtractor, Generator
from mnm.nn.blocks import GLU, JointBlock, ResBlock, same_block, up_block
from tests.foundation.test_phase import _randomise_batchnorm, export_with_dynamic_batch


def _prepared(module: nn.Module, seed: int) -> nn.Module:
    """float64, conv weights and BatchNorm off their init, eval mode."""
    gen = torch.Generator().manual_seed(seed)
    module = module.double()
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0.0, 0.5, generator=gen)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.5, generator=gen)
    _randomise_batchnorm(module, gen)
    return module.eval()


@settings(max_examples=30, deadline=None)
@given(
    in_ch=st.integers(1, 7), out_ch=st.integers(1, 5), height=st.integers(1, 9), width=st.integers(1, 9),
    batch=st.integers(1, 3), strided=st.booleans(), seed=st.integers(0, 2**16),
)
def test_gated_conv_equals_conv_bn_glu(in_ch, out_ch, height, width, batch, strided, seed):
    """sameBlock (3×3, no bias) and the extractor's down step (4×4 stride 2, with bias)."""
    if strided:
        block = nn.Sequential(nn.Conv2d(in_ch, 2 * out_ch, 4, 2, 1), nn.BatchNorm2d(2 * out_ch), GLU())
        height, width = 2 * height, 2 * width
    else:
        block = same_block(in_ch, out_ch)
    block = _prepared(block, seed)
    gated = rewrite_glus(nn.Sequential(block).eval())[0]
    assert len(gated) == 1 and isinstance(gated[0], GatedConv2d)
    x = torch.randn(batch, in_ch, height, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(gated(x), block(x), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("code_first", [True, False])
@pytest.mark.parametrize("side", [1, 2, 3, 6])
def test_gated_joint_equals_joint_block(code_first, side):
    """Both code orders, at sides where the nine border classes overlap (1×1, 2×2) and where they don't."""
    block = _prepared(JointBlock(5, 7, 3, code_first=code_first), side)
    with torch.no_grad():
        block.conv.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(side))
    gated = rewrite_glus(nn.Sequential(block).eval())[0]
    assert isinstance(gated, GatedJoint)
    gen = torch.Generator().manual_seed(100 + side)
    feat = torch.randn(2, 5, side, side + 1, generator=gen, dtype=torch.float64)
    code = torch.softmax(torch.randn(2, 7, generator=gen, dtype=torch.float64), 1)
    with torch.no_grad():
        torch.testing.assert_close(gated(feat, code), block(feat, code), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("side", [1, 4, 5])
def test_gated_phase_upsample_equals_the_up_block(side):
    block = _prepared(up_block(6, 3), side)
    phase = rewrite_up_blocks(nn.Sequential(block).eval())
    gated = rewrite_glus(phase)
    assert isinstance(gated[0], GatedPhaseUpsample)
    x = torch.randn(3, 6, side, side + 2, generator=torch.Generator().manual_seed(side), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(gated(x), block(x), atol=1e-12, rtol=1e-12)


def test_res_block_folds_its_second_batchnorm_into_a_biased_conv():
    block = _prepared(ResBlock(4), 3)
    gated = rewrite_glus(block)
    layers = list(gated.block)
    assert [type(m) for m in layers] == [GatedConv2d, nn.Conv2d] and layers[1].bias is not None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gated.modules())
    x = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(gated(x), block(x), atol=1e-12, rtol=1e-12)


def test_fused_heads_give_the_same_child_stage_outputs():
    cfg = PRESETS["tiny"]
    stage = _prepared(Generator(cfg).child, 7)
    fused = fuse_heads(stage)
    assert stage.fused_heads is None and isinstance(fused.fused_heads["parent"], ImageMaskHeads)
    gen = torch.Generator().manual_seed(7)
    n, s, f = 3, cfg.image_size, cfg.feature_channels
    phi = torch.randn(n, f, s, s, generator=gen, dtype=torch.float64)
    c = torch.softmax(torch.randn(n, cfg.n_child, generator=gen, dtype=torch.float64), 1)
    bg = torch.rand(n, 3, s, s, generator=gen, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        expected, got = stage(phi, c, bg), fused(phi, c, bg)
    assert set(got) == set(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-12, rtol=1e-12)


def test_every_rewrite_together_keeps_the_stages_and_the_trained_modules():
    """float32, all export rewrites: the stages agree to float rounding; the trained copies are untouched."""
    cfg = PRESETS["tiny"]
    gen = torch.Generator().manual_seed(5)
    g, x = Generator(cfg), FeatureExtractor(cfg)
    for module in (g, x):
        _randomise_batchnorm(module, gen)
        module.eval()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    n = 2
    z = torch.randn(n, cfg.z_dim, generator=gen)
    b, p = (torch.softmax(torch.randn(n, k, generator=gen), 1) for k in (cfg.n_bg, cfg.n_parent))
    c = torch.softmax(torch.randn(n, cfg.n_child, generator=gen), 1)
    image = torch.rand(n, 3, cfg.image_size, cfg.image_size, generator=gen) * 2 - 1
    exported = rewritten(g, EXPORT_REWRITES)
    kinds = {type(m) for m in exported.modules()}
    assert {GatedConv2d, GatedJoint, GatedLinear, GatedPhaseUpsample, ImageMaskHeads} <= kinds
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in exported.modules())
    with torch.no_grad():
        expected, got = g(z, b, p, c), exported(z, b, p, c)
        for name in expected:
            scale = max(1.0, expected[name].abs().max().item())
            assert (got[name] - expected[name]).abs().max().item() <= 1e-5 * scale, name
        scale = max(1.0, x(image).abs().max().item())
        assert (rewritten(x, EXPORT_REWRITES)(image) - x(image)).abs().max().item() <= 1e-5 * scale
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())
    assert not any(isinstance(m, (GatedConv2d, GatedJoint, ImageMaskHeads)) for m in g.modules())
    assert rewrites_in(g.child, EXPORT_REWRITES) == ["code_conv", "glu_split", "fused_heads"]
    assert rewrites_in(g.background, EXPORT_REWRITES) == ["up_phase", "glu_split"]


def test_glu_split_exports_without_split_and_onnxruntime_agrees(tmp_path):
    """Two convs per GLU, no Split in the graph; onnxruntime matches the trained block at new batches."""
    block = _prepared(same_block(6, 5), 11).float()
    gated = rewrite_glus(nn.Sequential(block).eval()).eval()
    path = tmp_path / "gated.onnx"
    ops = [node.op_type for node in export_with_dynamic_batch(gated, torch.randn(2, 6, 5, 7), path).graph.node]
    assert "Split" not in ops and ops.count("Conv") == 2 and ops.count("Sigmoid") == 1
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(11)
    for n in (1, 3):
        x = torch.randn(n, 6, 5, 7, generator=gen)
        (got,) = session.run(None, {"x": x.numpy()})
        with torch.no_grad():
            np.testing.assert_allclose(got, block(x).numpy(), atol=1e-5, rtol=1e-5)
