"""The embedding API: ``Pipeline`` composes a bundle's graphs into mixes, grids, codes and animations.

The work is split by job: ``requests`` parses factors, ``planner`` turns mixes into g_child inputs
(encoding only what is needed), ``executor`` runs the graphs in batches behind the caches,
``animator`` serves img2gif, ``results`` holds what comes back. docs/runtime.md explains the
composition and the caches.

Semantics: the background reference gives b and z_bg = E_z(background); the pose reference gives
z_pose = E_z(pose); the shape reference gives p; the texture reference gives c. In feature mode the
shape AND the pose come from one image, S(pose reference): the shape factor must then be left out
or be that same image.

Thread safety: one ``Pipeline`` serves concurrent requests (see ``mnm.runtime.executor``).
``pipeline.counters.snapshot()`` gives graph runs and images per graph, so callers and tests can
see the caching.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from mnm.errors import MnmError
from mnm.imaging import check_fit, prepare_reference, to_uint8
from mnm.runtime import grid as grid_layout
from mnm.runtime import stitch as stitching
from mnm.runtime.animator import Animator
from mnm.runtime.backends import create
from mnm.runtime.bundle import Bundle
from mnm.runtime.caches import frozen_copy, read_only
from mnm.runtime.executor import DEFAULT_CACHE_SIZE, DEFAULT_MAX_BATCH, Executor
from mnm.runtime.planner import ENCODER_OF, Plan, make_ref, plan_mixes
from mnm.runtime.requests import FACTORS, BoxTable, Factor, Mix, parse_factor
from mnm.runtime.results import Grid, Rendered

__all__ = ["Animator", "Grid", "Mix", "Pipeline", "Rendered"]


class Pipeline:
    """Mix-and-match on an exported bundle: ``Pipeline(bundle, backend="auto", max_batch=16)``.

    ``bundle`` is a ``Bundle`` or a bundle folder; ``backend`` a name (see
    ``mnm.runtime.backends``) or a backend object. A backend made from a name runs ``precision``
    (auto, fp32, fp16 or int8; ``Bundle.graph``) with ``threads`` CPU threads (None: the backend's
    default), and gets ``backend_options`` (``device_id``...); a backend object was given its own.
    ``concurrent`` runs independent graphs of a request side by side (off by default; see
    ``mnm.runtime.executor``).
    ``fit`` squares references without a box: ``crop`` (the centred square) or ``squash`` (the
    whole image resized, as the MixNMatch authors evaluated their published models).
    """

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike,
        backend="auto",
        max_batch: int = DEFAULT_MAX_BATCH,
        cache_size: int = DEFAULT_CACHE_SIZE,
        fit: str = "crop",
        concurrent: bool = False,
        precision: str = "auto",
        threads: int | None = None,
        **backend_options,
    ):
        self.fit = check_fit(fit)
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
        self.config = self.bundle.config
        if isinstance(backend, str):  # the TensorRT provider tunes its engines for max_batch
            backend = create(self.bundle, backend, **{"max_batch": max_batch, "precision": precision,
                                                      "threads": threads, **backend_options})
        elif precision != "auto" or threads is not None or backend_options:
            raise MnmError("Pipeline: precision, threads and backend options apply to a backend made from a name; "
                           "give them to the backend object instead")
        self.backend = backend
        self.executor = Executor(self.bundle, self.backend, max_batch, cache_size, concurrent)
        self.counters = self.executor.counters

    @property
    def max_batch(self) -> int:
        return self.executor.max_batch

    # ------------------------------------------------------------------ public API

    def prepare(self, image, box=None) -> np.ndarray:
        """A reference (path or H x W x 3 uint8 array, optional pixel box) → 3 x S x S model input."""
        return prepare_reference(image, self.config.image_size, box, fit=self.fit)

    def encode(self, images, factors=("z", "b", "p", "c"), boxes=None) -> dict[str, np.ndarray]:
        """Codes of reference images: ``{factor: [N, dim]}`` for factors among z, b, p, c, and
        ``shape_feature`` (S, feature mode) → [N, F, S, S]. Cached like the mixes' encodings."""
        unknown = sorted(set(factors) - {*ENCODER_OF, "shape_feature"})
        if unknown:
            raise MnmError(f"encode: unknown factor(s) {', '.join(unknown)}; use z, b, p, c, shape_feature")
        images = list(images)
        boxes = list(boxes) if boxes is not None else [None] * len(images)
        if len(boxes) != len(images):
            raise MnmError(f"encode: {len(images)} images but {len(boxes)} boxes")
        refs = [make_ref(self.prepare(image, box)) for image, box in zip(images, boxes, strict=True)]
        codes = self.executor.encode({(ENCODER_OF[f], r.digest): r for f in factors if f in ENCODER_OF for r in refs})
        out = {f: np.stack([codes[(ENCODER_OF[f], r.digest)] for r in refs]) for f in factors if f in ENCODER_OF}
        if "shape_feature" in factors:
            self.require_mode("feature")
            features = self.executor.shape_features([Plan(z_bg=None, b=None, c=None, feature_ref=r) for r in refs])
            out["shape_feature"] = np.stack(features)
        return out

    def generate(self, z_bg, b, c, z_pose=None, p=None, shape_feature=None) -> dict[str, np.ndarray]:
        """Images from explicit code batches: z_bg [N, Z], b [N, N_b], c [N, N_c], and either
        z_pose [N, Z] with p [N, N_p] or shape_feature [N, F, S, S]. Returns g_child's outputs,
        ``background`` and ``shape_feature`` as [N, ...] float arrays. b, p, c: rows of
        probabilities (one-hot or soft)."""
        z_bg, b, c = (np.asarray(a, np.float32) for a in (z_bg, b, c))
        n = len(z_bg)
        if shape_feature is None:
            if z_pose is None or p is None:
                raise MnmError("generate: give z_pose and p, or shape_feature")
            z_pose, p = np.asarray(z_pose, np.float32), np.asarray(p, np.float32)
        self._check_codes(n, z_bg=z_bg, b=b, c=c, z_pose=z_pose, p=p)
        plans = [
            Plan(
                z_bg=z_bg[i], b=b[i], c=c[i],
                z_pose=None if z_pose is None else z_pose[i],
                p=None if p is None else p[i],
                shape_feature=None if shape_feature is None else np.asarray(shape_feature[i], np.float32),
            )
            for i in range(n)
        ]
        results = self.executor.compose(plans)
        return {k: np.stack([r[k] for r in results]) for k in results[0]}

    def mix(self, background="random", pose="random", shape=None, texture="random", *, mode="code",
            seed: int | None = None, stitch: str | None = None, boxes: BoxTable | None = None) -> np.ndarray:
        """One mix-and-match image (S x S x 3 uint8). Factors: see ``mnm.runtime.requests.parse_factor``."""
        return self.render([self.make_mix(background, pose, shape, texture, boxes)], mode=mode, seed=seed,
                           stitch=stitch)[0].image

    def make_mix(self, background, pose, shape, texture, boxes: BoxTable | None = None) -> Mix:
        """Parse four factor values (paths, specs, arrays, ``Factor``s) into a ``Mix``."""
        return Mix(
            background=parse_factor(background, "background", boxes),
            pose=parse_factor(pose, "pose", boxes),
            shape=None if shape is None else parse_factor(shape, "shape", boxes),
            texture=parse_factor(texture, "texture", boxes),
        )

    def render(self, mixes: list[Mix], *, mode: str = "code", seed: int | None = None,
               rng: np.random.Generator | None = None, stitch: str | None = None) -> list[Rendered]:
        """Generate every mix, sharing encodings and stages between them.

        ``random`` factors are sampled from ``rng`` (or ``numpy.random.default_rng(seed)``), once per
        ``Factor`` object: mixes that share a factor object share its sample.
        """
        stitching.check_mode(stitch)
        self.require_mode(mode)
        rng = rng if rng is not None else np.random.default_rng(seed)
        plans = plan_mixes(mixes, mode, rng, stitch, self.config, self.prepare, self.executor.encode)
        results = self.executor.compose(plans)
        return [self._finish(plan, out, stitch) for plan, out in zip(plans, results, strict=True)]

    def grid(self, background=("random",), pose=("random",), shape=(None,), texture=("random",), *,
             mode: str = "code", seed: int | None = None, stitch: str | None = None,
             boxes: BoxTable | None = None) -> Grid:
        """Every combination of the factor lists. The last factor (in the order background, pose,
        shape, texture) that has several entries runs along the columns, the others along the rows."""
        lists = {"background": background, "pose": pose, "shape": shape, "texture": texture}
        axes: dict[str, list[Factor | None]] = {}
        for kind, values in lists.items():
            single = values is None or isinstance(values, (str, Path, Factor, np.ndarray, int))
            values = [values] if single else list(values)
            if not values:
                raise MnmError(f"grid: the {kind} list is empty")
            axes[kind] = [None if v is None and kind == "shape" else parse_factor(v, kind, boxes) for v in values]
        if mode == "code" and axes["shape"] == [None]:
            axes["shape"] = [Factor(label="random")]  # one sample for the whole grid
        varying = [k for k in FACTORS if len(axes[k]) > 1]
        col_kind = varying[-1] if varying else None
        row_kinds = varying[:-1]
        row_labels = list(itertools.product(*(range(len(axes[k])) for k in row_kinds)))
        mixes = []
        for r in row_labels:
            for j in range(len(axes[col_kind])) if col_kind else [0]:
                pick = {k: axes[k][0] for k in FACTORS}
                pick.update({k: axes[k][r[a]] for a, k in enumerate(row_kinds)})
                if col_kind:
                    pick[col_kind] = axes[col_kind][j]
                mixes.append(Mix(**pick))
        rendered = self.render(mixes, mode=mode, seed=seed, stitch=stitch)
        n_cols = len(axes[col_kind]) if col_kind else 1
        rows = [
            grid_layout.Axis(k, [self._thumbnail(axes[k][r[a]]) for r in row_labels],
                             [_label(axes[k][r[a]]) for r in row_labels])
            for a, k in enumerate(row_kinds)
        ]
        cols = (grid_layout.Axis(col_kind, [self._thumbnail(f) for f in axes[col_kind]],
                                 [_label(f) for f in axes[col_kind]]) if col_kind else None)
        fixed = [grid_layout.Axis(k, [self._thumbnail(axes[k][0])], [_label(axes[k][0])])
                 for k in FACTORS if len(axes[k]) == 1 and axes[k][0] is not None]
        caption = f"{mode} mode" + ("; shape and pose from the pose reference" if mode == "feature" else "")
        return Grid(rendered, rows, cols, caption, (max(1, len(row_labels)), n_cols), fixed)

    def animator(self, static_image, mode: str = "code", box=None, static_box=None) -> Animator:
        """Animate ``static_image`` frame by frame: it gives b, c, z_bg (and p in code mode) once;
        each frame gives the pose (code mode: E_z → g_parent) or the shape and pose (feature mode: S).
        ``box`` is the object's pixel box in every frame, ``static_box`` the one in the static image."""
        return Animator(self, static_image, mode, box, static_box)

    def clear_caches(self) -> None:
        self.executor.clear_caches()

    def close(self) -> None:
        """Release the backend's sessions or engines, the caches and the worker threads."""
        self.executor.close()
        self.backend.close()

    def require_mode(self, mode: str) -> None:
        if mode not in ("code", "feature"):
            raise MnmError(f"mode must be code or feature, got {mode!r}")
        if mode not in self.bundle.modes:
            raise MnmError(f"{self.bundle.path}: the bundle has no {mode} mode (modes: {', '.join(self.bundle.modes)})")

    def _finish(self, plan: Plan, outputs: dict[str, np.ndarray], stitch: str | None) -> Rendered:
        image = outputs["image"]
        if stitch:
            image = stitching.stitch(stitch, image, outputs["child_mask"], plan.refs[stitching.SOURCE[stitch]].array)
        codes = {"z_bg": plan.z_bg, "b": plan.b, "c": plan.c}
        if plan.z_pose is not None:
            codes.update(z_pose=plan.z_pose, p=plan.p)
        # Rows of g_child's batch are copied (a row would keep the batch alive); cached arrays are read-only
        # already; codes are read-only views (the caches and the factors hold them).
        outputs = {k: v if not v.flags.writeable else frozen_copy(v) for k, v in outputs.items()}
        return Rendered(to_uint8(image), outputs, {k: read_only(v) for k, v in codes.items()})

    def _thumbnail(self, factor: Factor | None) -> np.ndarray | None:
        if factor is None or not factor.is_image:
            return None
        return to_uint8(self.prepare(factor.image, factor.box))

    def _check_codes(self, n: int, **arrays) -> None:
        dims = self.config.code_dims()
        want = {"z_bg": dims["z"], "z_pose": dims["z"], "b": dims["b"], "p": dims["p"], "c": dims["c"]}
        for name, array in arrays.items():
            if array is not None and array.shape != (n, want[name]):
                raise MnmError(f"generate: {name} must have shape ({n}, {want[name]}), got {array.shape}")


def _label(factor: Factor | None) -> str:
    return "from pose" if factor is None else factor.label
