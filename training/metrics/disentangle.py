"""Disentanglement against ground truth on synthetic data (paper Table 3, with masks for keypoints).

For pairs (A, B) of images, C takes background and texture from A and shape and pose from B:
code mode C = G(z_bg=z_A, b_A, p_B, c_A, z_pose=z_B); feature mode C = child(S(B), c_A,
background(z_A, b_A)). Scores, all on the object crops at the model's side S:
- shape: IoU of C's child mask (> 0.5) with B's true mask (coverage > 0.5), higher is better;
- texture: chi-squared distance of colour histograms, A's object pixels (true mask) vs C's
  (predicted mask), lower is better;
- background: the same on the pixels outside those masks.
Three baselines put the numbers in context: random codes (C from sampled codes), swapping nothing
(C reconstructs A from A alone), and the ideal (the renderer's own image of A's background and
texture with B's shape and pose, with its true mask).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mnm.codes import Codes, sample_codes
from mnm.errors import MnmError
from mnm.imaging import crop_resize, object_crop_box, open_image, to_model_input, to_uint8
from mnm.progress import track
from mnm.training.code_mode import encode
from mnm.training.datasets import open_dataset
from mnm.training.datasets.dataset import load_record
from mnm.training.metrics.inputs import BundleModel, Model, check_common
from mnm.training.synthetic import Pose, SynthSpec, render_from_factors

NAME = "disentangle"
BUNDLES = True  # also scores an exported bundle at a precision, run by the runtime (docs/int8.md)
BINS = 8  # per RGB channel: a joint 8x8x8 histogram of 512 bins
THRESHOLD = 0.5  # predicted masks: child_mask > 0.5; true masks: coverage > 0.5
EMPTY_DISTANCE = 1.0  # a region with no pixels has nothing in common with anything: the maximum
MODES = ("code", "feature")
OUTPUTS = ("model", "random_codes", "swap_nothing", "ideal")


# -- the scores --------------------------------------------------------------------------------
def mask_iou(pred: np.ndarray, true: np.ndarray) -> float:
    """|pred ∩ true| / |pred ∪ true| of two boolean masks; 1.0 when both are empty."""
    pred, true = np.asarray(pred, bool), np.asarray(true, bool)
    union = np.logical_or(pred, true).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, true).sum() / union)


def colour_histogram(image: np.ndarray, region: np.ndarray, bins: int = BINS) -> np.ndarray | None:
    """L1-normalised joint RGB histogram (``bins`` per channel, uniform over 0..255) of the pixels
    of HxWx3 uint8 ``image`` where ``region`` is true; None when the region is empty."""
    pixels = np.asarray(image)[np.asarray(region, bool)]
    if not len(pixels):
        return None
    q = pixels.astype(np.int64) * bins // 256
    hist = np.bincount((q[:, 0] * bins + q[:, 1]) * bins + q[:, 2], minlength=bins ** 3).astype(np.float64)
    return hist / hist.sum()


def chi2_distance(h1: np.ndarray, h2: np.ndarray) -> float:
    """0.5 * sum((h1 - h2)^2 / (h1 + h2)) over bins where either is non-zero: 0 (same) to 1 (disjoint)."""
    h1, h2 = np.asarray(h1, np.float64), np.asarray(h2, np.float64)
    total = h1 + h2
    used = total > 0
    return float(0.5 * np.sum((h1[used] - h2[used]) ** 2 / total[used]))


def region_distance(image_a, region_a, image_c, region_c, bins: int = BINS) -> float:
    """chi2 of the two regions' histograms; ``EMPTY_DISTANCE`` when either region is empty."""
    ha, hc = colour_histogram(image_a, region_a, bins), colour_histogram(image_c, region_c, bins)
    return EMPTY_DISTANCE if ha is None or hc is None else chi2_distance(ha, hc)


def pair_scores(image_a, mask_a, mask_b, image_c, mask_c) -> dict:
    """The three scores of one triplet; masks are boolean SxS, images SxSx3 uint8."""
    return {
        "shape_iou": mask_iou(mask_c, mask_b),
        "texture_chi2": region_distance(image_a, mask_a, image_c, mask_c),
        "background_chi2": region_distance(image_a, ~mask_a, image_c, ~mask_c),
        "empty_object": int(not mask_c.any()),
        "empty_background": int(mask_c.all()),
    }


def aggregate(rows: list[dict]) -> dict:
    """Mean and standard deviation of each score over the pairs; counts of empty predicted regions."""
    out = {}
    for key in ("shape_iou", "texture_chi2", "background_chi2"):
        values = np.array([r[key] for r in rows], np.float64)
        out[key] = {"mean": float(values.mean()), "std": float(values.std())}
    out["empty_object"] = int(sum(r["empty_object"] for r in rows))
    out["empty_background"] = int(sum(r["empty_background"] for r in rows))
    return out


# -- the data ----------------------------------------------------------------------------------
@dataclass
class Item:
    """One synthetic image as the metric sees it: object crop, its true mask, and its truth."""

    image: np.ndarray  # S x S x 3 uint8
    mask: np.ndarray  # S x S bool
    truth: dict  # b, p, c, pose, ... from ground_truth.jsonl
    index: int  # 0-based scene index: the jitter keys of render_from_factors


def crop_pair(image: np.ndarray, mask: np.ndarray, box, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The object crop of an image and of its coverage mask, cut and resized identically."""
    height, width = image.shape[:2]
    crop = object_crop_box(box, width, height)
    resized = crop_resize(np.repeat(mask[..., None], 3, axis=2), crop, size)[..., 0]
    return crop_resize(image, crop, size), resized > 255 * THRESHOLD


class SynthSet:
    """A split of a `mnm data synth` folder with its ground truth and masks, loaded on demand."""

    def __init__(self, root: str | Path, split: str, size: int):
        self.root, self.size = Path(root), size
        self.spec = SynthSpec.load(self.root)
        self.dataset = open_dataset(self.root, split)
        truth_path = self.root / "ground_truth.jsonl"
        try:
            rows = [json.loads(line) for line in truth_path.read_text(encoding="utf-8").splitlines() if line.strip()]
            self.truth = {row["file"]: row for row in rows}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MnmError(f"{truth_path}: unreadable ground truth ({type(exc).__name__}: {exc})") from None

    def __len__(self) -> int:
        return len(self.dataset)

    def item(self, i: int) -> Item:
        """Record i decoded and cropped (not cached: memory stays flat however many pairs)."""
        rec = self.dataset.records[i]
        rel = rec.path.relative_to(self.root / "images").as_posix()
        if rel not in self.truth:
            raise MnmError(f"{self.root / 'ground_truth.jsonl'}: no entry for images/{rel}")
        mask_path = self.root / "masks" / rel
        try:
            with open_image(mask_path, mask_path, mask_path.name) as m:
                mask = np.array(m.convert("L"))
        except OSError as exc:
            raise MnmError(f"{mask_path}: cannot read the object mask ({exc})") from None
        image = load_record(rec)
        if mask.shape != image.shape[:2]:
            raise MnmError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]}, its image "
                           f"{image.shape[1]}x{image.shape[0]}")
        crop, crop_mask = crop_pair(image, mask, rec.box, self.size)
        truth = self.truth[rel]
        return Item(crop, crop_mask, truth, int(truth["id"]) - 1)

    def ideal(self, a: Item, b: Item) -> tuple[np.ndarray, np.ndarray]:
        """The renderer's C for (A, B) — A's background and texture with B's shape and pose — and its mask."""
        scene = render_from_factors(self.spec, a.truth["b"], b.truth["p"], a.truth["c"],
                                    Pose.from_dict(b.truth["pose"]), background_key=a.index, texture_key=a.index)
        if scene.truth["box"] is None:
            raise MnmError(f"{self.root}: the ideal render of pair ({a.index}, {b.index}) shows no object")
        return crop_pair(scene.image, scene.mask, scene.truth["box"], self.size)


def sample_pairs(n_images: int, pairs: int, seed: int) -> np.ndarray:
    """[pairs, 2] indices (A, B) with A != B, drawn uniformly from ``seed``."""
    if n_images < 2:
        raise MnmError(f"disentanglement needs at least 2 images in the split, found {n_images}")
    if pairs < 1:
        raise MnmError(f"pairs must be a positive integer, got {pairs}")
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n_images, pairs)
    b = (a + rng.integers(1, n_images, pairs)) % n_images
    return np.stack([a, b], axis=1)


# -- the generated images ----------------------------------------------------------------------
def _outputs(out: dict) -> tuple[np.ndarray, np.ndarray]:
    image, mask = (np.asarray(out[k].float().cpu().numpy() if torch.is_tensor(out[k]) else out[k], np.float32)
                   for k in ("image", "child_mask"))
    return to_uint8(image), mask[:, 0] > THRESHOLD


def generate_with_runtime(model: BundleModel, mode: str, xa: np.ndarray, xb: np.ndarray,
                          random_codes: Codes | None) -> dict:
    """:func:`generate` through the runtime's graphs (same mixes, same baselines)."""
    pipe = model.pipeline

    def encode(x: np.ndarray) -> dict:
        return {k: pipe.executor.run(f"enc_{k}", {"image": x})[k] for k in "zbpc"}

    def shape(x: np.ndarray) -> np.ndarray:
        return pipe.executor.run("extractor", {"image": x})["shape_feature"]

    ea, eb = encode(xa), encode(xb)
    if mode == "code":
        out = {"model": _outputs(pipe.generate(ea["z"], ea["b"], ea["c"], z_pose=eb["z"], p=eb["p"]))}
        same = lambda: pipe.generate(ea["z"], ea["b"], ea["c"], z_pose=ea["z"], p=ea["p"])  # noqa: E731
    else:
        out = {"model": _outputs(pipe.generate(ea["z"], ea["b"], ea["c"], shape_feature=shape(xb)))}
        same = lambda: pipe.generate(ea["z"], ea["b"], ea["c"], shape_feature=shape(xa))  # noqa: E731
    if random_codes is not None:  # the baselines
        rc = random_codes
        out["swap_nothing"] = _outputs(same())
        out["random_codes"] = _outputs(pipe.generate(rc.z, rc.b, rc.c, z_pose=rc.z, p=rc.p))
    return out


@torch.no_grad()
def generate(model: Model, mode: str, xa: torch.Tensor, xb: torch.Tensor, random_codes: Codes) -> dict:
    """C for each pair from the model and (``random_codes`` given) from the two generated baselines:
    {name: (images, masks)}."""
    if isinstance(model, BundleModel):
        return generate_with_runtime(model, mode, xa.numpy(), xb.numpy(), random_codes)
    g, dev = model.generator, model.device
    xa, xb = xa.to(dev), xb.to(dev)
    ea, eb = encode(model.encoders, xa), encode(model.encoders, xb)
    if mode == "code":
        mixed = g(ea["z"], ea["b"], eb["p"], ea["c"], z_pose=eb["z"])
        same = lambda: g(ea["z"], ea["b"], ea["p"], ea["c"])  # noqa: E731
    else:
        background = g.background(ea["z"], ea["b"])
        mixed = g.child(model.extractor(xb), ea["c"], background)
        same = lambda: g.child(model.extractor(xa), ea["c"], background)  # noqa: E731
    out = {"model": _outputs(mixed)}
    if random_codes is not None:  # the baselines
        out["swap_nothing"] = _outputs(same())
        out["random_codes"] = _outputs(g(*(torch.from_numpy(getattr(random_codes, k)).to(dev) for k in "zbpc")))
    return out


def check(data: str, pairs: int = 5000, mode: str = "code", seed: int = 0, split: str = "test",
          batch: int = 64) -> None:
    check_common(data, split, batch)
    if mode not in MODES:
        raise MnmError(f"--mode must be code or feature, got {mode!r}")
    if pairs < 1:
        raise MnmError(f"--pairs must be a positive integer, got {pairs}")
    SynthSpec.load(data)


def evaluate(model: Model | BundleModel, data: str, pairs: int = 5000, mode: str = "code", seed: int = 0,
             split: str = "test", batch: int = 64, baselines: bool = True) -> dict:
    """Scores of ``pairs`` random pairs of the split for the model and (``baselines``) the three baselines."""
    check(data, pairs, mode, seed, split, batch)
    has_extractor = model.has_extractor if isinstance(model, BundleModel) else model.extractor is not None
    if mode == "feature" and not has_extractor:
        raise MnmError(f"{model.meta['path']}: this checkpoint has no feature extractor S (stage "
                       f"{model.meta.get('stage')!r}); train feature mode first or use --mode code")
    synth = SynthSet(data, split, model.cfg.image_size)
    index = sample_pairs(len(synth), pairs, seed)
    # drawn at once, so the batch size does not change them
    random_codes = sample_codes(model.cfg, len(index), np.random.default_rng([seed, 1]), constrained=True)
    names = OUTPUTS if baselines else ("model",)
    rows: dict[str, list[dict]] = {name: [] for name in names}
    with track(total=len(index), desc="disentangle pairs", unit="pair") as bar:
        for start in range(0, len(index), batch):
            rows_ab = index[start:start + batch]
            items = {int(i): synth.item(int(i)) for i in np.unique(rows_ab)}
            chunk = [(items[a], items[b]) for a, b in rows_ab]
            xa = torch.from_numpy(np.stack([to_model_input(a.image) for a, _ in chunk]))
            xb = torch.from_numpy(np.stack([to_model_input(b.image) for _, b in chunk]))
            part = slice(start, start + len(chunk))
            codes = Codes(*(getattr(random_codes, k)[part] for k in "zbpc"))
            outputs = generate(model, mode, xa, xb, codes if baselines else None)
            for j, (a, b) in enumerate(chunk):
                for name in names:
                    if name == "ideal":
                        rows[name].append(pair_scores(a.image, a.mask, b.mask, *synth.ideal(a, b)))
                    else:
                        images, masks = outputs[name]
                        rows[name].append(pair_scores(a.image, a.mask, b.mask, images[j], masks[j]))
            bar.update(len(chunk))
    return {
        "data": str(data), "split": split, "mode": mode, "pairs": int(len(index)), "seed": seed,
        "results": {name: aggregate(rows[name]) for name in names},
        "protocol": {
            "pairs": "A uniform over the split, B uniform over the others (numpy default_rng(seed))",
            "mix": "code mode: C = G(z_bg=z_A, b_A, p_B, c_A, z_pose=z_B); feature mode: C = child(S(B), c_A, "
                   "background(z_A, b_A)); encoded b, p, c are softmax probabilities",
            "images": "object crops at the model's S (square of 1.5*max(w,h) around the box, clipped); masks "
                      "cropped the same way",
            "shape": "IoU of C's child mask (> 0.5) with B's true mask (coverage > 0.5); higher is better",
            "texture": "chi2 of colour histograms: A's object pixels (true mask) vs C's (predicted mask)",
            "background": "chi2 of colour histograms of the pixels outside those masks",
            "histogram": f"joint RGB, {BINS} uniform bins per channel ({BINS ** 3} bins), L1-normalised",
            "chi2": "0.5 * sum((h1 - h2)^2 / (h1 + h2)), 0 (identical) to 1 (disjoint); lower is better",
            "empty_region": f"a region with no pixels scores {EMPTY_DISTANCE} (counted in empty_object / "
                            "empty_background)",
            "baselines": {
                "random_codes": "C from constrained random codes (numpy default_rng([seed, 1]))",
                "swap_nothing": "C reconstructs A: every code (feature mode: S) from A",
                "ideal": "render_from_factors(b_A, p_B, c_A, pose_B, A's jitter keys) with its true mask",
            },
        },
    }


def summary(result: dict) -> str:
    def part(name: str) -> str:
        r = result["results"][name]
        return (f"{name} IoU {r['shape_iou']['mean']:.3f} tex {r['texture_chi2']['mean']:.3f} "
                f"bg {r['background_chi2']['mean']:.3f}")

    return f"disentangle ({result['mode']} mode, {result['pairs']} pairs): " + "; ".join(map(part, result["results"]))
