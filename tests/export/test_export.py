"""The exported bundle against PyTorch: every graph re-run here at a batch the exporter never used,
composition of the generator graphs by hand, the manifest's records, and failure behaviour."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper

from mnm.errors import MnmError
from mnm.export.bundle import export_bundle
from mnm.export.fp16 import to_fp16
from mnm.export.macs import count_macs
from mnm.export.onnx_graphs import check_graph
from mnm.export.specs import ExportModules, graphs_for, modes_for
from mnm.export.summary import summarize
from mnm.nn.encoders import Encoder
from tests.export.conftest import CFG, STEP, graph_inputs, torch_graph
from tests.util import run_cli

NEW_BATCH = 5  # the exporter traces at 2 and checks at 1 and 3
ALL_GRAPHS = {"enc_z", "enc_b", "enc_p", "enc_c", "g_background", "g_parent", "g_child", "extractor"}


def manifest_of(bundle):
    return json.loads((bundle / "manifest.json").read_text())


def session(bundle, entry):
    return ort.InferenceSession(str(bundle / entry["file"]), providers=["CPUExecutionProvider"])


def run(sess, inputs):
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, inputs), strict=True))


def assert_graphs_match_torch(bundle, modules, seed):
    manifest = manifest_of(bundle)
    assert set(manifest["graphs"]) == ALL_GRAPHS
    rng = np.random.default_rng(seed)
    for name, entry in manifest["graphs"].items():
        sess = session(bundle, entry)
        inputs = graph_inputs([i.name for i in sess.get_inputs()], modules, NEW_BATCH, rng)
        expected = torch_graph(name, modules)(inputs)
        got = run(sess, inputs)
        assert set(got) == set(expected), name
        for out, ref in expected.items():
            assert got[out].shape == ref.shape, (name, out)
            assert np.abs(got[out] - ref).max() <= 1e-4, (name, out, np.abs(got[out] - ref).max())


def test_cli_exports_print_every_graph(exported):
    assert exported.random_run.returncode == 0, exported.random_run.stderr
    for name in ALL_GRAPHS:
        assert name in exported.random_run.stdout
    assert (exported.checkpoint_bundle / "manifest.json").is_file(), exported.checkpoint_run.stderr


def test_checkpoint_bundle_matches_torch_at_a_new_batch(exported):
    assert_graphs_match_torch(exported.checkpoint_bundle, exported.checkpoint_modules, seed=1)


def test_random_init_bundle_matches_the_rebuilt_torch_networks(exported):
    assert_graphs_match_torch(exported.random_bundle, exported.random_modules, seed=2)


def test_graphs_accept_any_batch_on_the_named_axis(exported):
    manifest = manifest_of(exported.random_bundle)
    for entry in manifest["graphs"].values():
        model = onnx.load(str(exported.random_bundle / entry["file"]))
        for value in [*model.graph.input, *model.graph.output]:
            first = value.type.tensor_type.shape.dim[0]
            assert first.dim_param == "batch", (entry["file"], value.name)


def test_composed_generator_graphs_reproduce_the_torch_generator(exported):
    bundle, modules = exported.checkpoint_bundle, exported.checkpoint_modules
    graphs = manifest_of(bundle)["graphs"]
    rng = np.random.default_rng(3)
    n, dims = 4, CFG.code_dims()
    z_bg, z_pose = (rng.standard_normal((n, CFG.z_dim)).astype(np.float32) for _ in range(2))
    b, p, c = (rng.dirichlet(np.full(dims[k], 0.3), n).astype(np.float32) for k in "bpc")
    background = run(session(bundle, graphs["g_background"]), {"z": z_bg, "b": b})["background"]
    feature = run(session(bundle, graphs["g_parent"]), {"z": z_pose, "p": p})["shape_feature"]
    got = run(session(bundle, graphs["g_child"]), {"shape_feature": feature, "c": c, "background": background})
    got.update(background=background, shape_feature=feature)
    with torch.no_grad():
        t = {k: torch.from_numpy(v) for k, v in {"z": z_bg, "b": b, "p": p, "c": c, "z_pose": z_pose}.items()}
        expected = modules.generator(**t)
    assert set(got) == set(expected)
    for name, ref in expected.items():
        assert np.abs(got[name] - ref.numpy()).max() <= 1e-4, name


def test_extractor_then_child_graph_reproduces_feature_mode(exported):
    bundle, modules = exported.checkpoint_bundle, exported.checkpoint_modules
    graphs = manifest_of(bundle)["graphs"]
    rng = np.random.default_rng(4)
    n = 3
    image = rng.uniform(-1, 1, (n, 3, CFG.image_size, CFG.image_size)).astype(np.float32)
    z = rng.standard_normal((n, CFG.z_dim)).astype(np.float32)
    b = rng.dirichlet(np.full(CFG.n_bg, 0.3), n).astype(np.float32)
    c = rng.dirichlet(np.full(CFG.n_child, 0.3), n).astype(np.float32)
    feature = run(session(bundle, graphs["extractor"]), {"image": image})["shape_feature"]
    background = run(session(bundle, graphs["g_background"]), {"z": z, "b": b})["background"]
    got = run(session(bundle, graphs["g_child"]), {"shape_feature": feature, "c": c, "background": background})
    with torch.no_grad():
        g = modules.generator
        expected = g.child(modules.extractor(torch.from_numpy(image)), torch.from_numpy(c),
                           g.background(torch.from_numpy(z), torch.from_numpy(b)))
    for name, ref in expected.items():
        assert np.abs(got[name] - ref.numpy()).max() <= 1e-4, name


def test_fp16_graphs_compute_in_half_precision_within_the_stated_bound(exported):
    bundle, modules = exported.checkpoint_bundle, exported.checkpoint_modules
    manifest = manifest_of(bundle)
    assert set(manifest["graphs_fp16"]) == ALL_GRAPHS
    rng = np.random.default_rng(5)
    for name, entry in manifest["graphs_fp16"].items():
        assert entry["file"] == f"fp16/{name}.onnx" and entry["precision"] == "fp16"
        model = onnx.load(str(bundle / entry["file"]))
        scales = {n.input[2] for n in model.graph.node if n.op_type == "Resize"}  # float32 by the ONNX spec
        types = {t.name: t.data_type for t in model.graph.initializer}
        assert onnx.TensorProto.FLOAT16 in types.values(), name
        assert {k for k, v in types.items() if v == onnx.TensorProto.FLOAT} <= scales, name
        for value in [*model.graph.input, *model.graph.output]:
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT, (name, value.name)
        sess = session(bundle, entry)
        inputs = graph_inputs([i.name for i in sess.get_inputs()], modules, NEW_BATCH, rng)
        expected = torch_graph(name, modules)(inputs)
        got = run(sess, inputs)
        for out, ref in expected.items():
            bound = entry["parity"]["tolerance"] * max(1.0, float(np.abs(ref).max()))
            assert np.abs(got[out] - ref).max() <= bound, (name, out)
        assert entry["parity"]["tolerance"] == 2e-2


def test_manifest_records_match_the_files_and_the_contract(exported):
    bundle = exported.checkpoint_bundle
    manifest = manifest_of(bundle)
    assert manifest["format"] == "mnm-bundle" and manifest["format_version"] == 1
    assert manifest["config"] == CFG.to_dict()
    assert manifest["modes"] == ["code", "feature"]
    assert manifest["opset"] == 18
    assert manifest["normalization"]["range"] == [-1, 1]
    assert manifest["source"]["kind"] == "checkpoint" and manifest["source"]["step"] == STEP
    assert manifest["source"]["path"] == str(exported.checkpoint)
    assert set(manifest["exporter"]) >= {"mnm", "torch", "onnx", "onnxruntime"}
    s, z, f = CFG.image_size, CFG.z_dim, CFG.feature_channels
    expected_io = {
        "enc_z": ({"image": [3, s, s]}, {"z": [z]}),
        "g_background": ({"z": [z], "b": [CFG.n_bg]}, {"background": [3, s, s]}),
        "g_parent": ({"z": [z], "p": [CFG.n_parent]}, {"shape_feature": [f, s, s]}),
        "g_child": (
            {"shape_feature": [f, s, s], "c": [CFG.n_child], "background": [3, s, s]},
            {"image": [3, s, s], "child_mask": [1, s, s], "child_foreground": [3, s, s],
             "parent_image": [3, s, s], "parent_mask": [1, s, s], "parent_foreground": [3, s, s]},
        ),
        "extractor": ({"image": [3, s, s]}, {"shape_feature": [f, s, s]}),
    }
    for name, (inputs, outputs) in expected_io.items():
        entry = manifest["graphs"][name]
        assert {t["name"]: t["shape"] for t in entry["inputs"]} == {k: ["batch", *v] for k, v in inputs.items()}
        assert {t["name"]: t["shape"] for t in entry["outputs"]} == {k: ["batch", *v] for k, v in outputs.items()}
        assert all(t["dtype"] == "float32" for t in entry["inputs"] + entry["outputs"])
    for section in ("graphs", "graphs_fp16"):
        for entry in manifest[section].values():
            data = (bundle / entry["file"]).read_bytes()
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()
            assert entry["bytes"] == len(data)
            parity = entry["parity"]
            assert parity["batches"] == [1, 3]
            assert set(parity["max_abs_diff"]) == {t["name"] for t in entry["outputs"]}
            for out, diff in parity["max_abs_diff"].items():
                assert diff <= parity["tolerance"] * max(1.0, parity["output_scale"][out])
    for entry in manifest["graphs"].values():
        assert entry["parity"]["tolerance"] == 1e-4
        assert max(entry["parity"]["max_abs_diff"].values()) <= 1e-4


def test_macs_and_params_match_the_networks(exported):
    manifest = manifest_of(exported.random_bundle)
    summary = summarize(CFG)["graphs"]
    for name, entry in manifest["graphs"].items():
        assert entry["macs_per_image"] == summary[name]["macs"], name
        assert entry["params"] == summary[name]["params"], name


def test_manifest_names_the_rewrites_in_each_graph(exported):
    """docs/export-rewrites.md: the upsampling layers leave as phase convs + DepthToSpace; the
    manifest says which rewrite is in which graph and what the naive computation would cost."""
    manifest = manifest_of(exported.checkpoint_bundle)
    assert list(manifest["rewrites"]) == ["code_conv", "up_phase", "transposed_phase", "glu_split", "fused_heads"]
    expected = {"g_background": ["up_phase", "glu_split"], "g_parent": ["code_conv", "up_phase", "glu_split"],
                "g_child": ["code_conv", "glu_split", "fused_heads"], "extractor": ["transposed_phase", "glu_split"],
                "enc_z": ["glu_split"]}
    summary = summarize(CFG)["graphs"]
    for name, rewrites in expected.items():
        entry = manifest["graphs"][name]
        assert entry["rewrites"] == rewrites, name
        assert entry["macs_per_image_naive"] == summary[name]["macs_naive"], name
        nodes = onnx.load(str(exported.checkpoint_bundle / entry["file"])).graph.node
        ops = {node.op_type for node in nodes}
        assert "Resize" not in ops and "ConvTranspose" not in ops, name
        assert ("DepthToSpace" in ops) == bool({"up_phase", "transposed_phase"} & set(rewrites)), name
        # glu_split: BatchNorm folded everywhere, and no sigmoid gates the half of a Split any more
        producer = {out: node.op_type for node in nodes for out in node.output}
        assert "BatchNormalization" not in ops, name
        assert all(producer.get(n.input[0]) != "Split" for n in nodes if n.op_type == "Sigmoid"), name
    g_background = manifest["graphs"]["g_background"]
    assert g_background["macs_per_image"] < g_background["macs_per_image_naive"] / 2


def test_feature_graphs_only_when_the_extractor_was_trained(exported):
    g, e, _ = exported.random_modules
    code_only = ExportModules(g, e, None)
    assert {s.name for s in graphs_for(code_only)} == ALL_GRAPHS - {"extractor"}
    assert modes_for(code_only) == ["code"]


class _ExportsDifferently(Encoder):
    """An encoder whose exported graph adds 0.01: a real parity failure."""

    def forward(self, image, return_features=False):
        out = super().forward(image)
        return out + 0.01 if torch.compiler.is_exporting() else out


def test_parity_failure_writes_nothing_and_keeps_the_previous_bundle(exported, tmp_path):
    previous = tmp_path / "bundle"
    shutil.copytree(exported.random_bundle, previous)
    before = {p.name: p.read_bytes() for p in previous.iterdir() if p.is_file()}
    g, e, x = copy.deepcopy(exported.random_modules)
    e.z = _ExportsDifferently(CFG, "z").eval()
    with pytest.raises(MnmError, match=r"enc_z: ONNX output z differs from PyTorch by 0\.01"):
        export_bundle(previous, CFG, (g, e, x), {"kind": "random-init", "seed": 1})
    assert {p.name: p.read_bytes() for p in previous.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary folder left


def test_refuses_to_replace_a_folder_that_is_not_a_bundle(exported, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    modules, source = exported.random_modules, {"kind": "random-init", "seed": 0}
    with pytest.raises(MnmError, match="not a bundle"):
        export_bundle(tmp_path, CFG, modules, source)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    with pytest.raises(MnmError, match="--opset 17"):
        export_bundle(tmp_path / "new", CFG, modules, source, opset=17)
    with pytest.raises(MnmError, match="--max-batch"):
        export_bundle(tmp_path / "new", CFG, modules, source, max_batch=0)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", "X"], "either a run or checkpoint folder"),
        (["--random-init", "--out", "X"], "--random-init needs --preset"),
        (["ckpt", "--preset", "tiny", "--out", "X"], "apply to --random-init only"),
        (["missing_run", "--out", "X"], "missing_run: no such run or checkpoint folder"),
    ],
)
def test_cli_rejects_bad_arguments_with_one_line(tmp_path, args, message):
    result = run_cli("export", *args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "X").exists()


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_macs_are_counted_per_image_for_each_layer_kind():
    f = onnx.TensorProto.FLOAT
    weights = [
        numpy_helper.from_array(np.zeros((8, 2, 3, 3), np.float32), "w_conv"),  # 4 in, groups=2
        numpy_helper.from_array(np.zeros((8, 4, 4, 4), np.float32), "w_up"),  # ConvTranspose 8 -> 4
        numpy_helper.from_array(np.zeros((4 * 16 * 16, 10), np.float32), "w_fc"),
        numpy_helper.from_array(np.zeros((10, 6), np.float32), "w_mm"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w_conv"], ["h"], pads=[1, 1, 1, 1], group=2),  # [N, 8, 8, 8]
        helper.make_node("ConvTranspose", ["h", "w_up"], ["u"], strides=[2, 2], pads=[1, 1, 1, 1]),  # [N, 4, 16, 16]
        helper.make_node("Flatten", ["u"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w_fc"], ["fc"]),
        helper.make_node("MatMul", ["fc", "w_mm"], ["y"]),
    ]
    model = _model(nodes, [helper.make_tensor_value_info("x", f, ["batch", 4, 8, 8])],
                   [helper.make_tensor_value_info("y", f, ["batch", 6])], weights)
    conv = 8 * 8 * 8 * (2 * 3 * 3)
    up = 8 * 8 * 8 * (4 * 4 * 4)
    assert count_macs(model) == conv + up + 1024 * 10 + 10 * 6


def test_fp16_conversion_is_refused_by_the_checker_when_a_float_constant_remains(tmp_path):
    f = onnx.TensorProto.FLOAT
    two = helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.array([2.0], np.float32)))
    model = _model([two, helper.make_node("Mul", ["x", "k"], ["y"])],
                   [helper.make_tensor_value_info("x", f, ["batch", 3])],
                   [helper.make_tensor_value_info("y", f, ["batch", 3])])
    with pytest.raises(MnmError, match="odd.onnx: the graph fails the ONNX checker"):
        check_graph(to_fp16(model), tmp_path / "odd.onnx")
