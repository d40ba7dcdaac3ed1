"""Composition: outputs equal the PyTorch model's, the caches run each stage as often as docs/runtime.md
says, only the needed encoders run, concurrent requests give single-thread results, animation and
stitching. The runtime runs on onnxruntime CPU; torch only computes the expected values."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
import torch

from mnm.codes import one_hot, z_from_seed
from mnm.errors import MnmError
from mnm.imaging import load_image, prepare_reference, to_uint8
from mnm.runtime.pipeline import Pipeline
from mnm.runtime.requests import Factor
from tests.runtime.conftest import TINY

TOL = 1e-4
S = TINY.image_size


def t(array) -> torch.Tensor:
    return torch.from_numpy(np.array(array, np.float32))  # a copy: the pipeline's arrays are read-only


@torch.no_grad()
def encode(twin, kind: str, image) -> np.ndarray:
    """The torch encoder's code for one reference (softmax for b, p, c, as the graphs promise)."""
    out = getattr(twin.encoders, kind)(t(prepare_reference(image, S))[None])
    return (out if kind == "z" else torch.softmax(out, dim=1))[0].numpy()


@torch.no_grad()
def generate(twin, z_bg, b, c, z_pose=None, p=None, feature_image=None) -> dict[str, np.ndarray]:
    g = twin.generator
    background = g.background(t(z_bg)[None], t(b)[None])
    if feature_image is not None:
        phi = twin.extractor(t(prepare_reference(feature_image, S))[None])
    else:
        phi = g.parent(t(z_pose)[None], t(p)[None])
    out = g.child(phi, t(c)[None], background)
    return {k: v[0].numpy() for k, v in {**out, "background": background, "shape_feature": phi}.items()}


def assert_close(rendered, expected, keys=("image", "child_mask", "parent_image", "background", "shape_feature")):
    for key in keys:
        np.testing.assert_allclose(rendered.outputs[key], expected[key], atol=TOL, rtol=0, err_msg=key)


@pytest.fixture
def pipe(tiny_bundle):
    return Pipeline(tiny_bundle, backend="ort-cpu", max_batch=5)


def test_code_mode_equals_torch(pipe, torch_twin, photos):
    bg, pose, shape, texture = photos[:4]
    [r] = pipe.render([pipe.make_mix(bg, pose, shape, texture)])
    codes = {
        "z_bg": encode(torch_twin, "z", bg), "b": encode(torch_twin, "b", bg),
        "z_pose": encode(torch_twin, "z", pose), "p": encode(torch_twin, "p", shape),
        "c": encode(torch_twin, "c", texture),
    }
    # the photos' codes differ by far more than the tolerance, so a swapped reference would show
    assert np.abs(codes["z_bg"] - codes["z_pose"]).max() > 100 * TOL
    assert np.abs(codes["c"] - encode(torch_twin, "c", shape)).max() > 10 * TOL
    for key, value in codes.items():
        np.testing.assert_allclose(r.codes[key], value, atol=TOL, rtol=0, err_msg=key)
    assert_close(r, generate(torch_twin, **codes))
    assert np.array_equal(r.image, to_uint8(r.outputs["image"]))
    assert r.image.shape == (S, S, 3) and r.image.dtype == np.uint8


def test_feature_mode_equals_torch(pipe, torch_twin, photos):
    bg, pose, texture = photos[0], photos[1], photos[3]
    [r] = pipe.render([pipe.make_mix(bg, pose, None, texture)], mode="feature")
    expected = generate(
        torch_twin, encode(torch_twin, "z", bg), encode(torch_twin, "b", bg), encode(torch_twin, "c", texture),
        feature_image=pose,
    )
    assert_close(r, expected)
    assert "p" not in r.codes and "z_pose" not in r.codes


def test_mixed_sampled_user_and_encoded_codes_equal_torch(pipe, tiny_bundle, torch_twin, photos):
    soft_c = np.array([0.5, 0.0, 0.25, 0.25], np.float32)
    mix = pipe.make_mix(Factor(code=1, z=7), "seed:5", photos[2], soft_c)
    [r] = pipe.render([mix], seed=11)
    z_bg, b, z_pose = z_from_seed(7, TINY.z_dim), one_hot([1], TINY.n_bg)[0], z_from_seed(5, TINY.z_dim)
    p = encode(torch_twin, "p", photos[2])
    np.testing.assert_array_equal(r.codes["z_bg"], z_bg)
    np.testing.assert_array_equal(r.codes["b"], b)
    np.testing.assert_array_equal(r.codes["z_pose"], z_pose)
    np.testing.assert_array_equal(r.codes["c"], soft_c)
    assert_close(r, generate(torch_twin, z_bg, b, soft_c, z_pose, p))

    # random factors: sampled from the seed (same seed, same codes in a fresh pipeline), b/c one-hot
    sampled = pipe.make_mix("random", "random", "code:0", "random")
    [a] = pipe.render([sampled], seed=4)
    [again] = Pipeline(tiny_bundle, backend="ort-cpu").render([pipe.make_mix("random", "random", "code:0", "random")],
                                                                seed=4)
    for key in ("z_bg", "b", "z_pose", "c"):
        np.testing.assert_array_equal(a.codes[key], again.codes[key])
    assert sorted(np.unique(a.codes["b"])) == [0.0, 1.0] and a.codes["b"].sum() == 1
    assert_close(a, generate(torch_twin, a.codes["z_bg"], a.codes["b"], a.codes["c"], a.codes["z_pose"],
                             one_hot([0], TINY.n_parent)[0]))


def test_generate_api_with_soft_codes_and_given_shape_feature(pipe, torch_twin):
    rng = np.random.default_rng(0)
    n = 3
    z_bg, z_pose = rng.standard_normal((2, n, TINY.z_dim)).astype(np.float32)
    b, p, c = (rng.dirichlet(np.ones(k), n).astype(np.float32) for k in (TINY.n_bg, TINY.n_parent, TINY.n_child))
    out = pipe.generate(z_bg, b, c, z_pose=z_pose, p=p)
    for i in range(n):
        expected = generate(torch_twin, z_bg[i], b[i], c[i], z_pose[i], p[i])
        np.testing.assert_allclose(out["image"][i], expected["image"], atol=TOL, rtol=0)
    given = pipe.generate(z_bg, b, c, shape_feature=out["shape_feature"])
    np.testing.assert_allclose(given["image"], out["image"], atol=1e-6, rtol=0)
    with pytest.raises(MnmError, match="shape"):
        pipe.generate(z_bg, b[:, :2], c, z_pose=z_pose, p=p)


def test_grid_2x3x2_runs_each_stage_as_often_as_it_must_in_batches(pipe, photos):
    backgrounds, textures, poses = photos[0:2], photos[2:5], [photos[5], photos[0]]
    grid = pipe.grid(background=backgrounds, pose=poses, shape="code:1", texture=textures)
    counts = pipe.counters.snapshot()
    assert counts["images"]["g_background"] == 2
    assert counts["images"]["g_parent"] == 2
    assert counts["images"]["g_child"] == 12
    assert counts["runs"]["g_child"] == 3  # 12 images in batches of at most 5
    assert counts["runs"]["g_background"] == 1 and counts["runs"]["g_parent"] == 1
    # photos[0] is a background and a pose: E_z sees it once; no E_p (the shape is a code)
    assert counts["images"]["enc_z"] == 3
    assert counts["images"]["enc_b"] == 2 and counts["images"]["enc_c"] == 3
    assert "enc_p" not in counts["images"]
    # rows: background x pose (4), columns: texture (3); each cell is the mix of its references
    assert grid.shape == (4, 3) and [a.name for a in grid.rows] == ["background", "pose"]
    assert grid.cols.name == "texture"
    [cell] = pipe.render([pipe.make_mix(backgrounds[1], poses[0], "code:1", textures[2])])
    np.testing.assert_allclose(grid.cells[2 * 3 + 2].outputs["image"], cell.outputs["image"], atol=1e-6, rtol=0)
    assert grid.image().shape[0] > 4 * S and grid.image().shape[1] > 3 * S

    pipe.counters.reset()
    pipe.grid(background=backgrounds, pose=poses, shape="code:1", texture=textures)
    assert pipe.counters.snapshot()["images"] == {"g_child": 12}  # everything else came from the caches


def test_a_repeated_reference_is_not_encoded_again(pipe, photos, tmp_path):
    pipe.mix(photos[0], photos[1], photos[2], photos[3])
    before = pipe.counters.snapshot()["images"]
    copy = shutil.copy(photos[0], tmp_path / "same-pixels-other-name.png")
    pipe.mix(copy, photos[1], photos[2], photos[3])
    pipe.mix(load_image(photos[0]), photos[1], photos[2], photos[3])  # the same pixels as an array
    after = pipe.counters.snapshot()["images"]
    for graph in ("enc_z", "enc_b", "enc_p", "enc_c", "g_background", "g_parent"):
        assert after[graph] == before[graph], graph
    assert after["g_child"] == before["g_child"] + 2


def test_only_the_needed_encoders_run(pipe, photos):
    pipe.mix(Factor(code=1, z=2), "seed:2", "code:0", photos[3])
    assert set(pipe.counters.snapshot()["images"]) == {"enc_c", "g_background", "g_parent", "g_child"}
    pipe.counters.reset()
    pipe.mix("code:1", photos[1], None, "code:2", mode="feature")
    assert set(pipe.counters.snapshot()["images"]) == {"extractor", "g_background", "g_child"}


def test_caches_are_bounded(tiny_bundle, photos):
    pipe = Pipeline(tiny_bundle, backend="ort-cpu", cache_size=1)
    for bg in ("seed:1", "seed:2", "seed:1"):
        pipe.mix(bg, "seed:0", "code:0", "code:0")
    assert pipe.counters.images("g_background") == 3  # seed:1 was evicted by seed:2


def test_returned_arrays_are_read_only_so_an_edit_cannot_change_later_results(pipe, photos):
    refs = photos[0], photos[1], photos[2], photos[3]
    [first] = pipe.render([pipe.make_mix(*refs)])
    saved = {k: v.copy() for k, v in [*first.outputs.items(), *first.codes.items()]}
    for name, array in [*first.outputs.items(), *first.codes.items()]:
        assert not array.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 0
    edited = first.outputs["background"].copy()  # what a caller who wants to edit does
    edited[...] = 0
    first.image[...] = 0  # the uint8 image is the caller's own
    [again] = pipe.render([pipe.make_mix(*refs)])
    assert pipe.counters.images("g_background") == 1 and pipe.counters.images("enc_b") == 1  # from the caches
    for name, array in [*again.outputs.items(), *again.codes.items()]:
        assert np.abs(saved[name]).max() > 0 and np.array_equal(array, saved[name]), name


def test_cached_rows_own_their_memory_so_the_cache_bound_is_the_memory_bound(tiny_bundle, photos):
    pipe = Pipeline(tiny_bundle, backend="ort-cpu", max_batch=8)
    cells = pipe.grid(background=photos[:4], pose=photos[4], shape="code:1", texture=photos[5]).cells
    cached = [cell.outputs["background"] for cell in cells] + [cells[0].outputs["shape_feature"]]
    cached += [cell.codes[k] for cell in cells for k in ("z_bg", "b")]
    assert len({id(a) for a in cached}) == len(cached)
    for array in cached:
        # a row of the 4-image batch output would be a view (base set) keeping the whole batch alive
        assert array.base is None or array.base.base is None and array.base.nbytes == array.nbytes
    backgrounds = [cell.outputs["background"] for cell in cells]
    assert not any(np.shares_memory(a, b) for i, a in enumerate(backgrounds) for b in backgrounds[i + 1:])
    assert all(cell.outputs["image"].base is None for cell in cells)  # g_child rows are copied out too


def test_a_shared_random_factor_is_sampled_once_and_a_replaced_one_anew(pipe, photos):
    import dataclasses

    texture = Factor()  # random; make_mix checks it and must hand back the same factor
    mixes = [pipe.make_mix(photos[i], photos[1], "code:0", texture) for i in range(3)]
    assert all(m.texture is texture for m in mixes)
    rendered = pipe.render(mixes, seed=1)
    assert all(np.array_equal(r.codes["c"], rendered[0].codes["c"]) for r in rendered)
    other = dataclasses.replace(texture)
    assert other.key != texture.key and Factor().key != texture.key
    draws = {tuple(r.codes["c"]) for r in pipe.render(
        [pipe.make_mix(photos[0], photos[1], "code:0", dataclasses.replace(texture)) for _ in range(12)], seed=1)}
    assert len(draws) > 1  # twelve distinct factors: not one shared sample (4 textures)


class _ThreadLog:
    """The real backend, with a note of which thread ran each graph (the executor's concurrency is
    the thing under test)."""

    def __init__(self, backend):
        self.backend, self.threads = backend, {}

    def run(self, graph, feeds, outputs=None):
        self.threads.setdefault(graph, set()).add(threading.get_ident())
        return self.backend.run(graph, feeds, outputs)

    def __getattr__(self, name):
        return getattr(self.backend, name)


def test_independent_graphs_run_side_by_side_with_the_same_results(tiny_bundle, photos):
    """Concurrent: the four encoders of four references, and g_background beside g_parent, run in
    more than one thread; the images equal those of graphs run one after another."""
    from mnm.runtime.backends import create
    from mnm.runtime.bundle import Bundle

    bundle = Bundle.open(tiny_bundle)
    results, logs = {}, {}
    for concurrent in (False, True):
        log = _ThreadLog(create(bundle, "ort-cpu"))
        pipe = Pipeline(bundle, backend=log, concurrent=concurrent)
        results[concurrent] = [pipe.mix(photos[i], photos[i + 1], photos[i + 2], photos[i + 3]) for i in range(2)]
        logs[concurrent] = log.threads
        pipe.close()
    for a, b in zip(results[False], results[True], strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(len(ids) == 1 for ids in logs[False].values())
    assert len(set().union(*(logs[True][g] for g in ("enc_z", "enc_b", "enc_p", "enc_c")))) > 1
    assert len(logs[True]["g_background"] | logs[True]["g_parent"]) > 1


def test_eight_threads_give_the_single_thread_results(tiny_bundle, photos):
    mixes = [(photos[i % 6], photos[(i + 1) % 6], f"code:{i % 2}", photos[(i + 3) % 6]) for i in range(8)]
    single = Pipeline(tiny_bundle, backend="ort-cpu")
    expected = [single.render([single.make_mix(*m)])[0] for m in mixes]
    shared = Pipeline(tiny_bundle, backend="ort-cpu")
    results: dict[int, list] = {}
    errors = []
    start = threading.Barrier(8)

    def work(i):
        try:
            start.wait()
            results[i] = [shared.render([shared.make_mix(*mixes[i])])[0] for _ in range(3)]
        except Exception as exc:  # reported below with the thread's index
            errors.append((i, exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for i in range(8):
        for r in results[i]:
            np.testing.assert_allclose(r.outputs["image"], expected[i].outputs["image"], atol=1e-6, rtol=0)
            assert np.abs(r.image.astype(int) - expected[i].image).max() <= 1
    assert shared.counters.images("g_child") == 24


@pytest.mark.parametrize("mode", ["code", "feature"])
def test_animator_equals_torch_and_recomputes_only_the_pose_path(pipe, torch_twin, photos, mode):
    static = photos[0]
    animator = pipe.animator(str(static), mode=mode)
    first = pipe.counters.snapshot()["images"]
    assert first["g_background"] == 1 and first["enc_b"] == 1 and first["enc_c"] == 1
    frames = [load_image(p) for p in photos[1:4]]
    outputs = [animator.frame(f) for f in frames]
    counts = pipe.counters.snapshot()["images"]
    assert counts["g_background"] == 1 and counts["enc_b"] == 1 and counts["enc_c"] == 1
    assert counts["g_child"] == 3
    if mode == "code":
        assert counts["enc_z"] == 1 + 3 and counts["g_parent"] == 3 and "extractor" not in counts
    else:
        assert counts["extractor"] == 3 and "g_parent" not in counts and counts["enc_z"] == 1
    z_bg, b, c = (encode(torch_twin, k, static) for k in ("z", "b", "c"))
    for frame, out in zip(frames, outputs, strict=True):
        if mode == "code":
            expected = generate(torch_twin, z_bg, b, c, encode(torch_twin, "z", frame), encode(torch_twin, "p", static))
        else:
            expected = generate(torch_twin, z_bg, b, c, feature_image=frame)
        assert out.shape == (S, S, 3) and out.dtype == np.uint8
        assert np.abs(out.astype(int) - to_uint8(expected["image"])).max() <= 1


def test_stitching_pastes_the_reference_through_the_child_mask(pipe, photos):
    bg, pose, texture = photos[0], photos[1], photos[2]
    mix = pipe.make_mix(bg, pose, None, texture)
    [plain] = pipe.render([mix], mode="feature")
    [back] = pipe.render([mix], mode="feature", stitch="background")
    [fore] = pipe.render([mix], mode="feature", stitch="foreground")
    gen, m = plain.outputs["image"], plain.outputs["child_mask"]
    assert np.array_equal(back.image, to_uint8(gen * m + prepare_reference(bg, S) * (1 - m)))
    assert np.array_equal(fore.image, to_uint8(prepare_reference(pose, S) * m + gen * (1 - m)))
    assert not np.array_equal(back.image, plain.image) and not np.array_equal(fore.image, back.image)
    with pytest.raises(MnmError, match="background must be a reference image"):
        pipe.render([pipe.make_mix("code:1", pose, None, texture)], stitch="background")


def test_feature_mode_takes_shape_and_pose_from_one_image(pipe, photos):
    with pytest.raises(MnmError, match="one image"):
        pipe.mix(photos[0], photos[1], photos[2], photos[3], mode="feature")
    with pytest.raises(MnmError, match="pose must be a reference image"):
        pipe.mix(photos[0], "seed:1", None, photos[3], mode="feature")
    same = pipe.mix(photos[0], photos[1], photos[1], photos[3], mode="feature")
    assert np.array_equal(same, pipe.mix(photos[0], photos[1], None, photos[3], mode="feature"))
    assert "enc_p" not in pipe.counters.snapshot()["images"]


@pytest.mark.parametrize(
    ("factor", "kind", "message"),
    [
        ("code:3", "pose", "no category code"),
        ("seed:3", "shape", "has no z"),
        ("code:9", "texture", "out of range"),
        ("nope.png", "texture", "not found"),
    ],
)
def test_bad_factors_are_one_clear_line(pipe, photos, factor, kind, message):
    values = {"background": photos[0], "pose": photos[1], "shape": "code:0", "texture": photos[2], kind: factor}
    with pytest.raises(MnmError, match=message) as info:
        pipe.mix(values["background"], values["pose"], values["shape"], values["texture"])
    assert "\n" not in str(info.value)


def test_precision_and_threads_are_keyword_arguments_of_the_pipeline():
    """``Pipeline(..., precision=, threads=)`` as docs/architecture.md says; they reach a backend made
    from a name, and are refused (not ignored) beside a backend object, which was made with its own."""
    import inspect

    from mnm.demo import DEMO_DIR

    parameters = inspect.signature(Pipeline).parameters
    assert (parameters["precision"].default, parameters["threads"].default) == ("auto", None)
    pipe = Pipeline(DEMO_DIR / "bundle", backend="ort-cpu", precision="fp32", threads=1)
    assert pipe.backend.description == "ort-cpu (onnxruntime, fp32, 1 thread)"
    with pytest.raises(MnmError, match="give them to the backend object instead"):
        Pipeline(pipe.bundle, backend=pipe.backend, threads=2)
    pipe.close()
