"""Render a whole dataset to disk in the CUB-200-2011 layout, in parallel worker processes.

Each image's randomness comes from (seed, index), so the bytes do not depend on the number of
workers. Every file is written atomically; the index files come last and ``images.txt`` last of
all, so an interrupted run never looks like a complete dataset.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import cv2
import numpy as np

from mnm.atomic import write_bytes, write_text
from mnm.errors import MnmError
from mnm.progress import track
from mnm.training.synthetic.backgrounds import background_family
from mnm.training.synthetic.preview import preview_grid
from mnm.training.synthetic.render import render_scene
from mnm.training.synthetic.shapes import KEYPOINTS, shape_family
from mnm.training.synthetic.spec import SynthSpec, is_int
from mnm.training.synthetic.textures import texture

FORMAT = "mnm-synth/1"
PREVIEW_COUNT = 32
TEST_EVERY = 10  # image ids divisible by this are the test split
# What a run writes besides images/ and masks/; images.txt goes last, so it is listed first here
# for removal before a rewrite.
INDEX_FILES = ("images.txt", "classes.txt", "image_class_labels.txt", "bounding_boxes.txt",
               "train_test_split.txt", "ground_truth.jsonl", "preview.png")
MAX_IMAGES = 10_000_000


def class_folder(spec: SynthSpec, c: int) -> str:
    """CUB-style class folder: 1-based number, then the shape family and texture names."""
    width = max(3, len(str(spec.n_child)))
    shape = shape_family(spec.seed, spec.parent(c)).name
    return f"{c + 1:0{width}d}.{shape}_{texture(spec.seed, c, spec.textures_per_shape).name}"


def render_dataset(out: str | os.PathLike, n: int, size: int, shapes: int, textures_per_shape: int,
                   backgrounds: int, correlation: float, seed: int, workers: int | None = None,
                   object_min: float = SynthSpec.object_min, object_max: float = SynthSpec.object_max) -> Path:
    """Render ``n`` scenes into folder ``out`` and return it.

    Writes ``images/`` and ``masks/`` (same relative names), the CUB index files, ``ground_truth.jsonl``,
    ``preview.png`` and ``synth.json``. ``workers`` (default: every CPU) are spawned processes, so a
    script that calls this with more than one worker needs the usual ``if __name__ == "__main__":``.
    """
    spec = SynthSpec(size=size, shapes=shapes, textures_per_shape=textures_per_shape,
                     backgrounds=backgrounds, correlation=correlation, seed=seed,
                     object_min=object_min, object_max=object_max).validate()
    if not (is_int(n) and 1 <= n <= MAX_IMAGES):
        raise MnmError(f"--n must be an integer from 1 to {MAX_IMAGES}, got {n!r}")
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    elif not (is_int(workers) and workers >= 1):
        raise MnmError(f"--workers must be a positive integer, got {workers!r}")
    out = Path(out)
    _prepare(out)
    write_text(out / "synth.json", json.dumps(_description(spec, n), indent=2) + "\n")

    chunk = max(1, min(256, -(-n // (workers * 8))))
    ranges = [(start, min(n, start + chunk)) for start in range(0, n, chunk)]
    parts: list[list[dict] | None] = [None] * len(ranges)
    try:
        with track(total=n, desc="rendering", unit="img") as bar:
            if workers == 1 or len(ranges) == 1:
                for i, (a, b) in enumerate(ranges):
                    parts[i] = _render_range(spec, str(out), n, a, b)
                    bar.update(b - a)
            else:
                context = multiprocessing.get_context("spawn")  # OpenCV's threads make fork unsafe
                with ProcessPoolExecutor(min(workers, len(ranges)), mp_context=context,
                                         initializer=_init_worker) as pool:
                    futures = {pool.submit(_render_range, spec, str(out), n, a, b): i
                               for i, (a, b) in enumerate(ranges)}
                    for future in as_completed(futures):
                        parts[futures[future]] = future.result()
                        bar.update(len(parts[futures[future]]))
    except OSError as exc:
        raise MnmError(f"{out}: cannot write the dataset ({exc})") from None

    truths = [t for part in parts for t in part]
    _write_index(out, spec, truths)
    return out


def _init_worker() -> None:
    cv2.setNumThreads(1)  # the processes are the parallelism


def _image_name(spec: SynthSpec, n: int, index: int, c: int) -> str:
    return f"{class_folder(spec, c)}/synth_{index + 1:0{max(6, len(str(n)))}d}.png"


def _render_range(spec: SynthSpec, out: str, n: int, start: int, stop: int) -> list[dict]:
    """Render and write images start..stop-1 with their masks; return their ground truth."""
    truths = []
    for index in range(start, stop):
        scene = render_scene(spec, index)
        name = _image_name(spec, n, index, scene.truth["c"])
        write_bytes(Path(out, "images", name), _png(scene.image[..., ::-1]))
        write_bytes(Path(out, "masks", name), _png(scene.mask))
        truths.append({"id": index + 1, "file": name, **scene.truth})
    return truths


def _png(array: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:
        raise MnmError("OpenCV could not encode a PNG")
    return data.tobytes()


def _prepare(out: Path) -> None:
    """Accept a new or empty folder, or one an earlier run wrote (its old outputs are removed)."""
    if out.exists() and not out.is_dir():
        raise MnmError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not (out / "synth.json").is_file():
            raise MnmError(f"{out}: not empty and holds no synth.json; choose a new or empty folder")
        for name in INDEX_FILES:
            (out / name).unlink(missing_ok=True)
        for name in ("images", "masks"):
            shutil.rmtree(out / name, ignore_errors=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MnmError(f"{out}: cannot create the folder ({exc.strerror or exc})") from None


def _description(spec: SynthSpec, n: int) -> dict:
    return {
        "format": FORMAT,
        "spec": spec.to_dict(),
        "n": n,
        "classes": "texture c (0-based) is class c + 1; its shape family is c // textures_per_shape",
        "preferred_background": "texture c prefers background family c mod backgrounds",
        "split": f"image ids divisible by {TEST_EVERY} are test (0), the rest train (1)",
        "masks": "8-bit object coverage, same relative names as images; box = every pixel with coverage > 0",
        "keypoints": list(KEYPOINTS),
        "shape_families": [shape_family(spec.seed, p).name for p in range(spec.shapes)],
        "textures": [texture(spec.seed, c, spec.textures_per_shape).name for c in range(spec.n_child)],
        "background_families": [background_family(spec.seed, b).name for b in range(spec.backgrounds)],
    }


def _write_index(out: Path, spec: SynthSpec, truths: list[dict]) -> None:
    def lines(rows) -> str:
        return "".join(f"{row}\n" for row in rows)

    write_text(out / "ground_truth.jsonl", lines(json.dumps(t) for t in truths))
    write_text(out / "classes.txt", lines(f"{c + 1} {class_folder(spec, c)}" for c in range(spec.n_child)))
    write_text(out / "image_class_labels.txt", lines(f"{t['id']} {t['c'] + 1}" for t in truths))
    write_text(out / "bounding_boxes.txt", lines(
        f"{t['id']} " + " ".join(f"{float(v):.1f}" for v in t["box"]) for t in truths))
    split = (f"{t['id']} {int(t['id'] % TEST_EVERY != 0)}" for t in truths)
    write_text(out / "train_test_split.txt", lines(split))
    tiles = []
    for t in truths[:PREVIEW_COUNT]:
        tiles.append((render_scene(spec, t["id"] - 1).image, f"p{t['p']} c{t['c']} b{t['b']}"))
    write_bytes(out / "preview.png", _png(preview_grid(tiles)[..., ::-1]))
    write_text(out / "images.txt", lines(f"{t['id']} {t['file']}" for t in truths))
