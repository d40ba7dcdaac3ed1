"""Synthetic scenes with ground truth (`mnm data synth`): determinism, labels, truth, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from mnm.codes import parent_of
from mnm.errors import MnmError
from mnm.training.synthetic import (
    KEYPOINTS,
    Pose,
    SynthSpec,
    render_dataset,
    render_from_factors,
    render_scene,
    sample_factors,
)
from mnm.training.synthetic.render import supersampling
from tests.util import run_cli

SPEC = SynthSpec(size=64, shapes=3, textures_per_shape=4, backgrounds=5, correlation=0.6, seed=11)
N = 240


def _render(out: Path, spec: SynthSpec, n: int, workers: int) -> Path:
    return render_dataset(out, n=n, workers=workers, **spec.to_dict())


def _table(root: Path, name: str) -> dict[int, list[str]]:
    rows = [line.split() for line in (root / name).read_text().splitlines()]
    return {int(row[0]): row[1:] for row in rows}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return _render(tmp_path_factory.mktemp("synth") / "data", SPEC, N, workers=1)


@pytest.fixture(scope="module")
def truths(dataset) -> list[dict]:
    return [json.loads(line) for line in (dataset / "ground_truth.jsonl").read_text().splitlines()]


def test_same_seed_same_bytes_with_one_or_two_workers(tmp_path):
    spec = replace(SPEC, size=32)
    one = _tree(_render(tmp_path / "one", spec, 30, workers=1))
    two = _tree(_render(tmp_path / "two", spec, 30, workers=2))
    assert len(one) == 30 * 2 + 8  # images, masks, 7 index files, synth.json
    assert one == two
    other = _tree(_render(tmp_path / "other", replace(spec, seed=12), 30, workers=1))
    assert other["ground_truth.jsonl"] != one["ground_truth.jsonl"]


def test_cub_layout_and_labels_are_consistent(dataset, truths):
    k = SPEC.textures_per_shape
    images = _table(dataset, "images.txt")
    labels = _table(dataset, "image_class_labels.txt")
    classes = _table(dataset, "classes.txt")
    split = _table(dataset, "train_test_split.txt")
    assert sorted(images) == list(range(1, N + 1)) == [t["id"] for t in truths]
    assert sorted(classes) == list(range(1, SPEC.n_child + 1))
    assert {v[0] for v in split.values()} == {"0", "1"}
    cfg = SPEC.model_config
    for t in truths:
        c, p = t["c"], t["p"]
        assert images[t["id"]] == [t["file"]]
        assert labels[t["id"]] == [str(c + 1)]
        assert t["file"].split("/")[0] == classes[c + 1][0]
        assert c // k == p == int(parent_of(c, cfg))
        assert 0 <= t["b"] < SPEC.backgrounds
        assert (dataset / "images" / t["file"]).is_file() and (dataset / "masks" / t["file"]).is_file()
    assert len({t["c"] for t in truths}) == SPEC.n_child  # every texture shows up in 240 images


def test_truth_matches_the_factors_and_the_api_renders_the_same_image(dataset, truths):
    for t in truths[:10]:
        f = sample_factors(SPEC, t["id"] - 1)
        assert (f.b, f.p, f.c, f.pose.to_dict()) == (t["b"], t["p"], t["c"], t["pose"])
        on_disk = cv2.imread(str(dataset / "images" / t["file"]), cv2.IMREAD_COLOR)[..., ::-1]
        np.testing.assert_array_equal(render_scene(SPEC, t["id"] - 1).image, on_disk)
        # The evaluation path: the scene again from the JSON record alone.
        again = render_from_factors(SPEC, t["b"], t["p"], t["c"], Pose.from_dict(t["pose"]),
                                    background_key=t["id"] - 1, texture_key=t["id"] - 1)
        np.testing.assert_array_equal(again.image, on_disk)


@pytest.mark.parametrize("rho", [0.0, 0.35, 1.0])
def test_correlation_knob(rho):
    spec = replace(SPEC, correlation=rho, backgrounds=7)
    n = 3000
    hits = sum(f.b == spec.preferred_background(f.c) for f in (sample_factors(spec, i) for i in range(n)))
    expected = rho + (1 - rho) / spec.backgrounds  # the uniform draw can also land on the preferred one
    std = np.sqrt(expected * (1 - expected) / n)
    assert abs(hits / n - expected) <= 4 * std + 1e-12


def test_masks_boxes_and_keypoints_agree(dataset, truths):
    tol = 1.0 / supersampling(SPEC.size)  # a vertex is resolved to one supersampled pixel
    boxes = _table(dataset, "bounding_boxes.txt")
    for t in truths:
        mask = cv2.imread(str(dataset / "masks" / t["file"]), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (SPEC.size, SPEC.size) and mask.dtype == np.uint8
        ys, xs = np.nonzero(mask)
        assert xs.size > 20
        x, y, w, h = t["box"]
        assert [float(v) for v in boxes[t["id"]]] == [x, y, w, h]
        assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
        assert x >= 0 and y >= 0 and x + w <= SPEC.size and y + h <= SPEC.size
        assert set(t["keypoints"]) == set(KEYPOINTS)
        for kx, ky, visible in t["keypoints"].values():
            assert visible == 1
            assert x - tol <= kx <= x + w + tol and y - tol <= ky <= y + h + tol
        hx, hy, _ = t["keypoints"]["head"]
        assert mask[int(hy), int(hx)] > 0  # the head centre lies on the object


@pytest.mark.parametrize("object_min, object_max", [(0.2, 0.3), (0.7, 0.8)])
def test_object_size_range(object_min, object_max):
    """The object's larger box side spans the requested share of the image side (the background
    discriminator learns only from the background that shows around the box)."""
    spec = SynthSpec(size=64, shapes=2, textures_per_shape=2, backgrounds=4, seed=5,
                     object_min=object_min, object_max=object_max)
    for index in range(20):
        x, y, w, h = render_scene(spec, index).truth["box"]
        assert object_min * 64 - 2 <= max(w, h) <= object_max * 64 + 2, (index, w, h)


def test_hue_histograms_tell_textures_apart(dataset, truths):
    hists, labels = [], []
    for t in truths:
        image = cv2.imread(str(dataset / "images" / t["file"]), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(dataset / "masks" / t["file"]), cv2.IMREAD_UNCHANGED) == 255
        hue = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 0][mask]
        hist = np.histogram(hue, bins=30, range=(0, 180))[0].astype(np.float64)
        hists.append(hist / hist.sum())
        labels.append(t["c"])
    hists, labels = np.array(hists), np.array(labels)
    fit, held = np.arange(N) % 2 == 0, np.arange(N) % 2 == 1
    centroids = np.array([hists[fit & (labels == c)].mean(axis=0) for c in range(SPEC.n_child)])
    predicted = np.argmin(((hists[held, None] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = (predicted == labels[held]).mean()
    assert accuracy > 0.7, accuracy  # chance is 1/12


def test_render_from_factors_mixes_background_shape_and_texture():
    a, b = sample_factors(SPEC, 3), sample_factors(SPEC, 7)
    scene_a, scene_b = render_scene(SPEC, 3), render_scene(SPEC, 7)
    mixed = render_from_factors(SPEC, a.b, b.p, a.c, b.pose, background_key=3, texture_key=3)
    np.testing.assert_array_equal(mixed.mask, scene_b.mask)  # shape and pose of B
    assert mixed.truth["box"] == scene_b.truth["box"]
    assert mixed.truth["keypoints"] == scene_b.truth["keypoints"]
    clear = (mixed.mask == 0) & (scene_a.mask == 0)
    np.testing.assert_array_equal(mixed.image[clear], scene_a.image[clear])  # background of A
    assert (mixed.truth["b"], mixed.truth["p"], mixed.truth["c"]) == (a.b, b.p, a.c)
    with pytest.raises(MnmError, match="out of range"):
        render_from_factors(SPEC, 0, SPEC.shapes, 0, a.pose)


def test_preview_and_description(dataset):
    preview = cv2.imread(str(dataset / "preview.png"), cv2.IMREAD_COLOR)
    assert preview.shape == (4 * 144, 8 * 128, 3) and preview.std() > 10
    assert SynthSpec.load(dataset) == SPEC
    assert json.loads((dataset / "synth.json").read_text())["n"] == N
    newest = max(p.stat().st_mtime_ns for p in dataset.rglob("*") if p.is_file())
    assert (dataset / "images.txt").stat().st_mtime_ns == newest  # the file that makes it complete is last


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "--n must be"),
    ({"size": 48}, "--size must be a power of two"),
    ({"correlation": 1.5}, "--correlation must be"),
    ({"shapes": 0}, "--shapes must be"),
    ({"workers": 0}, "--workers must be"),
])
def test_bad_arguments_raise_one_line(tmp_path, kwargs, message):
    args = {"n": 4, "size": 32, "shapes": 2, "textures_per_shape": 2, "backgrounds": 3, "correlation": 0.5,
            "seed": 0, "workers": 1, **kwargs}
    with pytest.raises(MnmError, match=message) as info:
        render_dataset(tmp_path / "out", **args)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_refuses_a_foreign_folder_and_rewrites_its_own(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(MnmError, match="not empty"):
        _render(foreign, replace(SPEC, size=32), 3, workers=1)
    assert (foreign / "keep.txt").read_text() == "mine"
    own = _render(tmp_path / "own", replace(SPEC, size=32), 20, workers=1)
    _render(own, replace(SPEC, size=32), 5, workers=1)
    assert len(list((own / "images").rglob("*.png"))) == 5 == len(list((own / "masks").rglob("*.png")))


def test_cli_end_to_end_without_torch(tmp_path):
    out = tmp_path / "cli"
    result = run_cli("data", "synth", "--out", out, "--n", "12", "--size", "32", "--shapes", "2",
                     "--textures-per-shape", "2", "--seed", "3", "--workers", "1", block_torch=True)
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout and "12 images" in result.stdout and "4 classes" in result.stdout
    assert len((out / "images.txt").read_text().splitlines()) == 12
    assert SynthSpec.load(out) == SynthSpec(size=32, shapes=2, textures_per_shape=2, backgrounds=4,
                                            correlation=0.8, seed=3)

    bad = run_cli("data", "synth", "--out", tmp_path / "bad", "--n", "5", "--correlation", "-0.1")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: --correlation must be a number from 0 to 1, got -0.1"]
    assert not (tmp_path / "bad").exists()

    small = run_cli("data", "synth", "--out", tmp_path / "small", "--n", "5", "--object-size", "0.6", "0.3")
    assert small.returncode == 2
    assert small.stderr.strip().splitlines() == [
        "error: --object-size must be two fractions with 0.1 <= min <= max <= 0.95, got 0.6, 0.3"]


def test_the_cub_loader_reads_it(dataset, truths):
    from mnm.training.datasets import check_dataset, open_dataset

    by_file = {str(dataset / "images" / t["file"]): t for t in truths}
    train = open_dataset(dataset, split="train").records
    assert len(train) == N - N // 10
    for record in train:
        t = by_file[str(record.path)]
        assert t["id"] % 10 != 0
        assert record.label == t["c"] and tuple(record.box) == tuple(float(v) for v in t["box"])
    report = check_dataset(dataset)
    assert report.format == "cub" and report.problems == [] and report.usable == N
