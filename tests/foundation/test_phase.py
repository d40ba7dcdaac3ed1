"""The phase rewrites of docs/export-rewrites.md equal the blocks they replace, borders included."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mnm.config import PRESETS
from mnm.export.rewrites import rewrites_in, rewritten
from mnm.export.rewrites.phase import PhaseUpsample, rewrite_transposed_blocks, rewrite_up_blocks
from mnm.nn import FeatureExtractor, Generator
from mnm.nn.blocks import GLU, up_block


def _randomise_batchnorm(module: nn.Module, gen: torch.Generator) -> None:
    """BatchNorm statistics and affine terms off their init, so the folding is really tested."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.5, generator=gen)
                m.running_var.uniform_(0.3, 3.0, generator=gen)
                m.weight.normal_(1.0, 0.5, generator=gen)
                m.bias.normal_(0.0, 0.5, generator=gen)


def _naive_up(block: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The reference upBlock written out: repeat each pixel 2×2, zero-padded 3×3 conv, BN, GLU."""
    _, conv, bn, _ = block
    up = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    y = torch.nn.functional.conv2d(up, conv.weight, padding=1)
    y = (y - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    return torch.nn.functional.glu(y * bn.weight[:, None, None] + bn.bias[:, None, None], dim=1)


def export_with_dynamic_batch(module: nn.Module, example: torch.Tensor, path) -> onnx.ModelProto:
    """``module(x)`` as an ONNX graph (input ``x``, output ``y``, dynamic batch axis) at ``path``."""
    batch = torch.export.Dim("batch", min=1, max=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), dynamo=True, input_names=["x"], output_names=["y"],
                          dynamic_shapes=({0: batch},), verbose=False)
    return onnx.load(str(path))


def _transposed_block(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(in_ch, 2 * out_ch, 4, 2, 1), nn.BatchNorm2d(2 * out_ch), GLU())


@settings(max_examples=40, deadline=None)
@given(
    in_ch=st.integers(1, 7),
    out_ch=st.integers(1, 5),
    height=st.integers(1, 9),
    width=st.integers(1, 9),
    batch=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_up_phase_equals_the_naive_block(in_ch, out_ch, height, width, batch, seed):
    """float64: equal to rounding at any size from 1×1 → 2×2 up, odd channel counts, any batch."""
    gen = torch.Generator().manual_seed(seed)
    block = up_block(in_ch, out_ch).double()
    with torch.no_grad():
        block[1].weight.normal_(generator=gen)
    _randomise_batchnorm(block, gen)
    block.eval()
    phase = rewrite_up_blocks(nn.Sequential(block).eval())[0]
    assert isinstance(phase, PhaseUpsample)
    x = torch.randn(batch, in_ch, height, width, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        expected = _naive_up(block, x)
        torch.testing.assert_close(block(x), expected, atol=1e-12, rtol=1e-12)
        got = phase(x)
    assert got.shape == (batch, out_ch, 2 * height, 2 * width)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    in_ch=st.integers(1, 6),
    out_ch=st.integers(1, 5),
    side=st.integers(1, 8),
    batch=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_transposed_phase_equals_conv_transpose(in_ch, out_ch, side, batch, seed):
    gen = torch.Generator().manual_seed(seed)
    block = _transposed_block(in_ch, out_ch).double()
    with torch.no_grad():
        block[0].weight.normal_(generator=gen)
        block[0].bias.normal_(generator=gen)
    _randomise_batchnorm(block, gen)
    block.eval()
    phase = rewrite_transposed_blocks(nn.Sequential(block).eval())[0]
    assert isinstance(phase, PhaseUpsample)
    x = torch.randn(batch, in_ch, side, side + 1, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(phase(x), block(x), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("size,batch", [(1, 1), (4, 2), (7, 5)])
def test_up_phase_float32_at_paper_channels(size, batch):
    """float32 at the channel counts of the paper's first upBlock: equal to float rounding."""
    gen = torch.Generator().manual_seed(size)
    block = up_block(512, 256)
    _randomise_batchnorm(block, gen)
    block.eval()
    x = torch.randn(batch, 512, size, size, generator=gen)
    with torch.no_grad():
        expected, got = block(x), rewrite_up_blocks(nn.Sequential(block).eval())(x)
    assert (got - expected).abs().max().item() <= 1e-5 * max(1.0, expected.abs().max().item())


def test_rewrites_copy_and_leave_the_trained_module_alone():
    cfg = PRESETS["tiny"]
    g = Generator(cfg).eval()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    out = rewritten(g, ["up_phase", "transposed_phase"])
    assert out is not g
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())
    assert not any(isinstance(m, PhaseUpsample) for m in g.modules())
    assert sum(isinstance(m, PhaseUpsample) for m in out.modules()) == 2 * len(g.background.stem.up)
    with pytest.raises(ValueError, match="eval mode"):
        rewrite_up_blocks(Generator(cfg).train())
    assert rewrites_in(g.background, ["up_phase", "transposed_phase"]) == ["up_phase"]
    assert rewrites_in(g.child, ["up_phase"]) == ["code_conv"]
    assert rewrites_in(FeatureExtractor(cfg), ["up_phase", "transposed_phase"]) == ["transposed_phase"]


@pytest.mark.parametrize("batch", [1, 4])
def test_rewritten_stages_equal_the_trained_stages(batch):
    cfg = PRESETS["tiny"]
    gen = torch.Generator().manual_seed(batch)
    g, x = Generator(cfg), FeatureExtractor(cfg)
    for module in (g, x):
        _randomise_batchnorm(module, gen)
        module.eval()
    z = torch.randn(batch, cfg.z_dim, generator=gen)
    b = torch.softmax(torch.randn(batch, cfg.n_bg, generator=gen), 1)
    p = torch.softmax(torch.randn(batch, cfg.n_parent, generator=gen), 1)
    image = torch.rand(batch, 3, cfg.image_size, cfg.image_size, generator=gen) * 2 - 1
    names = ["up_phase", "transposed_phase"]
    with torch.no_grad():
        for stage, inputs in ((g.background, (z, b)), (g.parent, (z, p)), (x, (image,))):
            expected = stage(*inputs)
            got = rewritten(stage, names)(*inputs)
            assert (got - expected).abs().max().item() <= 1e-5 * max(1.0, expected.abs().max().item())


def test_up_phase_exports_as_phase_convs_and_depth_to_space(tmp_path):
    """The ONNX graph holds no Resize and four 2×2 convs per upBlock; onnxruntime matches the naive
    block at batches the trace never saw, borders included."""
    gen = torch.Generator().manual_seed(9)
    block = up_block(6, 5)
    _randomise_batchnorm(block, gen)
    block.eval()
    phase = rewrite_up_blocks(nn.Sequential(block).eval()).eval()
    path = tmp_path / "up.onnx"
    model = export_with_dynamic_batch(phase, torch.randn(2, 6, 5, 7), path)
    ops = [node.op_type for node in model.graph.node]
    assert "Resize" not in ops and ops.count("DepthToSpace") == 1
    kernels = {t.name: tuple(t.dims) for t in model.graph.initializer}
    conv_kernels = [kernels.get(node.input[1]) for node in model.graph.node if node.op_type == "Conv"]
    assert len(conv_kernels) == 4 and all(k is None or k[2:] == (2, 2) for k in conv_kernels)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 3):
        x = torch.randn(n, 6, 5, 7, generator=gen)
        (got,) = session.run(None, {"x": x.numpy()})
        with torch.no_grad():
            expected = block(x).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
