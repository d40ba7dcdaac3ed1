"""Composition of the bundle's graphs into mixes, grids and animations, with caches (DESIGN §6).

What runs for a request:

- encoders only for the codes it needs: a background reference runs E_z and E_b, a pose reference
  E_z (code mode) or S (feature mode), a shape reference E_p, a texture reference E_c; ``code:``,
  ``seed:`` and ``random`` factors run no encoder. Each distinct reference (key: sha256 of its
  prepared 3 x S x S input) goes through each encoder once, across calls.
- ``g_background`` once per distinct (z_bg, b), ``g_parent`` once per distinct (z_pose, p) (code
  mode) and ``extractor`` once per distinct shape/pose reference (feature mode): these results are
  cached on the bytes of their inputs. Only ``g_child`` runs per combination. Every graph runs in
  batches of at most ``max_batch`` images.

Semantics: the background reference gives b and z_bg = E_z(background); the pose reference gives
z_pose = E_z(pose); the shape reference gives p; the texture reference gives c. In feature mode the
shape AND the pose come from one image, S(pose reference): the shape factor must then be left out
or be that same image.

Thread safety: one ``Pipeline`` serves concurrent requests. Backends' ``run`` is thread-safe
(onnxruntime sessions; TensorRT contexts under a lock per engine), the caches and the counters
take a lock for each access, and graphs run outside those locks. Two threads that miss the same
cache entry at once both compute it (same result; the counters show both runs).

``pipeline.counters.snapshot()`` gives graph runs and images per graph, so callers and tests can
see the caching.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnm.errors import MnmError
from mnm.imaging import prepare_reference, to_uint8
from mnm.runtime import grid as grid_layout
from mnm.runtime import stitch as stitching
from mnm.runtime.backends import create
from mnm.runtime.bundle import Bundle
from mnm.runtime.requests import FACTORS, BoxTable, Factor, parse_factor

ENCODER_OF = {"z": "enc_z", "b": "enc_b", "p": "enc_p", "c": "enc_c"}
CHILD_OUTPUTS = ("image", "child_mask", "child_foreground", "parent_image", "parent_mask", "parent_foreground")
DEFAULT_MAX_BATCH = 16
DEFAULT_CACHE_SIZE = 256
"""Entries per cache (codes, backgrounds, shape features); at paper scale a shape feature is 1 MB."""


class Counters:
    """Graph runs and images per graph, safe to update from many threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._runs: dict[str, int] = {}
            self._images: dict[str, int] = {}

    def add(self, graph: str, images: int) -> None:
        with self._lock:
            self._runs[graph] = self._runs.get(graph, 0) + 1
            self._images[graph] = self._images.get(graph, 0) + images

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {"runs": dict(self._runs), "images": dict(self._images)}

    def images(self, graph: str) -> int:
        with self._lock:
            return self._images.get(graph, 0)

    def runs(self, graph: str) -> int:
        with self._lock:
            return self._runs.get(graph, 0)


class _Lru:
    """A bounded mapping with least-recently-used eviction, under a lock."""

    def __init__(self, size: int):
        self.size = size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


@dataclass(frozen=True)
class Mix:
    """One combination of the four factors (``shape`` None: sampled in code mode, from the pose in feature mode)."""

    background: Factor
    pose: Factor
    shape: Factor | None
    texture: Factor


@dataclass
class Rendered:
    """A generated image: ``image`` H x W x 3 uint8 (stitched if asked), ``outputs`` the float
    arrays (3 x S x S / 1 x S x S in the model's ranges: g_child's outputs plus ``background`` and
    ``shape_feature``), ``codes`` the codes used (z_bg, b, c, and z_pose, p in code mode)."""

    image: np.ndarray
    outputs: dict[str, np.ndarray]
    codes: dict[str, np.ndarray]


@dataclass
class Grid:
    """The cells of a grid in row-major order and the axes that label them; ``image()`` draws it."""

    cells: list[Rendered]
    rows: list[grid_layout.Axis]
    cols: grid_layout.Axis | None
    caption: str = ""
    shape: tuple[int, int] = (1, 1)

    def image(self) -> np.ndarray:
        return grid_layout.compose([c.image for c in self.cells], self.rows, self.cols, self.caption)


@dataclass
class _Ref:
    """A prepared reference image: model input and its content key."""

    array: np.ndarray  # 3 x S x S float32 in [-1, 1]
    digest: str


@dataclass
class _Plan:
    """The inputs of one g_child run, before the cached stages are looked up."""

    z_bg: np.ndarray
    b: np.ndarray
    c: np.ndarray
    z_pose: np.ndarray | None = None
    p: np.ndarray | None = None
    feature_ref: _Ref | None = None
    shape_feature: np.ndarray | None = None
    refs: dict[str, _Ref] = field(default_factory=dict)  # factor -> reference, for stitching


class Pipeline:
    """Mix-and-match on an exported bundle: ``Pipeline(bundle, backend="auto", max_batch=16)``.

    ``bundle`` is a ``Bundle`` or a bundle folder; ``backend`` a name (see
    ``mnm.runtime.backends``) or a backend object; ``backend_options`` go to the backend.
    """

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike,
        backend="auto",
        max_batch: int = DEFAULT_MAX_BATCH,
        cache_size: int = DEFAULT_CACHE_SIZE,
        **backend_options,
    ):
        if max_batch < 1:
            raise MnmError(f"max_batch must be at least 1, got {max_batch}")
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
        self.config = self.bundle.config
        self.backend = create(self.bundle, backend, **backend_options) if isinstance(backend, str) else backend
        self.max_batch = max_batch
        self.counters = Counters()
        self._codes = _Lru(cache_size * 4)
        self._backgrounds = _Lru(cache_size)
        self._features = _Lru(cache_size)

    # ------------------------------------------------------------------ public API

    def prepare(self, image, box=None) -> np.ndarray:
        """A reference (path or H x W x 3 uint8 array, optional pixel box) → 3 x S x S model input."""
        return prepare_reference(image, self.config.image_size, box)

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
        refs = [self._ref(self.prepare(image, box)) for image, box in zip(images, boxes, strict=True)]
        codes = self._encode_refs({(ENCODER_OF[f], r.digest): r for f in factors if f in ENCODER_OF for r in refs})
        out = {f: np.stack([codes[(ENCODER_OF[f], r.digest)] for r in refs]) for f in factors if f in ENCODER_OF}
        if "shape_feature" in factors:
            self._require_mode("feature")
            features = self._shape_features([_Plan(z_bg=None, b=None, c=None, feature_ref=r) for r in refs])
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
            _Plan(
                z_bg=z_bg[i], b=b[i], c=c[i],
                z_pose=None if z_pose is None else z_pose[i],
                p=None if p is None else p[i],
                shape_feature=None if shape_feature is None else np.asarray(shape_feature[i], np.float32),
            )
            for i in range(n)
        ]
        results = self._compose(plans)
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
        self._require_mode(mode)
        rng = rng if rng is not None else np.random.default_rng(seed)
        plans = self._plan(mixes, mode, rng, stitch)
        results = self._compose(plans)
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
        fixed = [f"{k}: {_label(axes[k][0])}" for k in FACTORS if len(axes[k]) == 1 and not (
            k == "shape" and axes[k][0] is None)]
        caption = f"{mode} mode; " + ", ".join(fixed) if fixed else f"{mode} mode"
        return Grid(rendered, rows, cols, caption, (max(1, len(row_labels)), n_cols))

    def animator(self, static_image, mode: str = "code", box=None, static_box=None) -> Animator:
        """Animate ``static_image`` frame by frame: it gives b, c, z_bg (and p in code mode) once;
        each frame gives the pose (code mode: E_z → g_parent) or the shape and pose (feature mode: S).
        ``box`` is the object's pixel box in every frame, ``static_box`` the one in the static image."""
        return Animator(self, static_image, mode, box, static_box)

    def clear_caches(self) -> None:
        for cache in (self._codes, self._backgrounds, self._features):
            cache.clear()

    def close(self) -> None:
        """Release the backend's sessions or engines and the caches."""
        self.clear_caches()
        self.backend.close()

    # ------------------------------------------------------------------ planning

    def _require_mode(self, mode: str) -> None:
        if mode not in ("code", "feature"):
            raise MnmError(f"mode must be code or feature, got {mode!r}")
        if mode not in self.bundle.modes:
            raise MnmError(f"{self.bundle.path}: the bundle has no {mode} mode (modes: {', '.join(self.bundle.modes)})")

    def _ref(self, array: np.ndarray) -> _Ref:
        array = np.ascontiguousarray(array, dtype=np.float32)
        return _Ref(array, hashlib.sha256(array.tobytes()).hexdigest())

    def _plan(self, mixes: list[Mix], mode: str, rng: np.random.Generator, stitch: str | None) -> list[_Plan]:
        # id(Factor) -> (that Factor, its concrete factor): one sample per object. The Factor is held so
        # its id cannot be reused by a later temporary (a shape left out in code mode) within this call.
        resolved: dict[int, tuple[Factor, Factor]] = {}
        refs: dict[object, _Ref] = {}  # source key -> prepared reference
        jobs: dict[tuple[str, str], _Ref] = {}
        wanted = []  # per mix: {factor: Factor or _Ref}
        for mix in mixes:
            if mode == "feature":
                _check_feature_mix(mix)  # the shape comes from S(pose reference)
                shape = None
            else:
                shape = mix.shape if mix.shape is not None else Factor(label="random")
            entry = {}
            for kind, factor in (("background", mix.background), ("pose", mix.pose),
                                 ("shape", shape), ("texture", mix.texture)):
                if factor is None:
                    continue
                if id(factor) not in resolved:
                    resolved[id(factor)] = (factor, factor.resolve(kind, self.config, rng))
                factor = resolved[id(factor)][1]
                if factor.is_image:
                    key = _source_key(factor)
                    if key not in refs:
                        refs[key] = self._ref(self.prepare(factor.image, factor.box))
                    ref = refs[key]
                    for graph in _encoders_for(kind, mode):
                        jobs[(graph, ref.digest)] = ref
                    entry[kind] = ref
                else:
                    entry[kind] = factor
            if stitch and not isinstance(entry.get(stitching.SOURCE[stitch]), _Ref):
                raise MnmError(f"stitch {stitch}: the {stitching.SOURCE[stitch]} must be a reference image")
            wanted.append(entry)
        codes = self._encode_refs(jobs)
        plans = []
        for entry in wanted:
            bg, pose, texture = entry["background"], entry["pose"], entry["texture"]
            plan = _Plan(
                z_bg=codes[("enc_z", bg.digest)] if isinstance(bg, _Ref) else bg.z,
                b=codes[("enc_b", bg.digest)] if isinstance(bg, _Ref) else bg.code,
                c=codes[("enc_c", texture.digest)] if isinstance(texture, _Ref) else texture.code,
                refs={k: v for k, v in entry.items() if isinstance(v, _Ref)},
            )
            if mode == "feature":
                plan.feature_ref = pose
            else:
                shape = entry["shape"]
                plan.z_pose = codes[("enc_z", pose.digest)] if isinstance(pose, _Ref) else pose.z
                plan.p = codes[("enc_p", shape.digest)] if isinstance(shape, _Ref) else shape.code
            plans.append(plan)
        return plans

    # ------------------------------------------------------------------ running

    def _run(self, graph: str, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run ``graph`` over the batch in chunks of ``max_batch``, counting runs and images."""
        n = len(next(iter(feeds.values())))
        parts = []
        for start in range(0, n, self.max_batch):
            chunk = {k: np.ascontiguousarray(v[start : start + self.max_batch], np.float32) for k, v in feeds.items()}
            parts.append(self.backend.run(graph, chunk, outputs))
            self.counters.add(graph, len(next(iter(chunk.values()))))
        return parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _encode_refs(self, jobs: dict[tuple[str, str], _Ref]) -> dict[tuple[str, str], np.ndarray]:
        """(encoder graph, digest) → code vector; each pair computed once and cached."""
        found, missing = {}, {}
        for key, ref in jobs.items():
            value = self._codes.get(key)
            if value is None:
                missing.setdefault(key[0], []).append((key, ref))
            else:
                found[key] = value
        for graph, items in missing.items():
            if graph not in self.bundle.graphs:
                raise MnmError(f"{self.bundle.path}: the bundle has no {graph} graph")
            out = self._run(graph, {"image": np.stack([ref.array for _, ref in items])})
            values = out[graph.removeprefix("enc_")]
            for (key, _), value in zip(items, values, strict=True):
                self._codes.put(key, value)
                found[key] = value
        return found

    def _cached_stage(self, cache: _Lru, keys: list, graph: str, feeds_of, output: str) -> list[np.ndarray]:
        """Look each key up in ``cache``; run ``graph`` once over the distinct misses."""
        values, misses = {}, {}
        for i, key in enumerate(keys):
            if key in values or key in misses:
                continue
            value = cache.get(key)
            if value is None:
                misses[key] = i
            else:
                values[key] = value
        if misses:
            firsts = list(misses.values())
            out = self._run(graph, feeds_of(firsts))[output]
            for key, value in zip(misses, out, strict=True):
                cache.put(key, value)
                values[key] = value
        return [values[key] for key in keys]

    def _backgrounds_for(self, plans: list[_Plan]) -> list[np.ndarray]:
        keys = [(p.z_bg.tobytes(), p.b.tobytes()) for p in plans]
        return self._cached_stage(
            self._backgrounds, keys, "g_background",
            lambda idx: {"z": np.stack([plans[i].z_bg for i in idx]), "b": np.stack([plans[i].b for i in idx])},
            "background",
        )

    def _shape_features(self, plans: list[_Plan]) -> list[np.ndarray]:
        """φ per plan: given, S(reference) (feature mode) or g_parent(z_pose, p) (code mode)."""
        result: list[np.ndarray | None] = [p.shape_feature for p in plans]
        extract = [i for i, p in enumerate(plans) if p.shape_feature is None and p.feature_ref is not None]
        parent = [i for i, p in enumerate(plans) if p.shape_feature is None and p.feature_ref is None]
        if extract:
            sub = [plans[i] for i in extract]
            values = self._cached_stage(
                self._features, [("S", p.feature_ref.digest) for p in sub], "extractor",
                lambda idx: {"image": np.stack([sub[i].feature_ref.array for i in idx])}, "shape_feature",
            )
            for i, v in zip(extract, values, strict=True):
                result[i] = v
        if parent:
            sub = [plans[i] for i in parent]
            values = self._cached_stage(
                self._features, [("P", p.z_pose.tobytes(), p.p.tobytes()) for p in sub], "g_parent",
                lambda idx: {"z": np.stack([sub[i].z_pose for i in idx]), "p": np.stack([sub[i].p for i in idx])},
                "shape_feature",
            )
            for i, v in zip(parent, values, strict=True):
                result[i] = v
        return result

    def _compose(self, plans: list[_Plan]) -> list[dict[str, np.ndarray]]:
        """Cached background and shape stages, then g_child per plan in batches."""
        backgrounds = self._backgrounds_for(plans)
        features = self._shape_features(plans)
        out = self._run("g_child", {
            "shape_feature": np.stack(features),
            "c": np.stack([p.c for p in plans]),
            "background": np.stack(backgrounds),
        })
        return [
            {**{k: out[k][i] for k in out}, "background": backgrounds[i], "shape_feature": features[i]}
            for i in range(len(plans))
        ]

    def _finish(self, plan: _Plan, outputs: dict[str, np.ndarray], stitch: str | None) -> Rendered:
        image = outputs["image"]
        if stitch:
            image = stitching.stitch(stitch, image, outputs["child_mask"], plan.refs[stitching.SOURCE[stitch]].array)
        codes = {"z_bg": plan.z_bg, "b": plan.b, "c": plan.c}
        if plan.z_pose is not None:
            codes.update(z_pose=plan.z_pose, p=plan.p)
        return Rendered(to_uint8(image), outputs, codes)

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


class Animator:
    """Per-frame generation for img2gif: the static image's stages computed once (see ``Pipeline.animator``)."""

    def __init__(self, pipeline: Pipeline, static_image, mode: str, box, static_box):
        pipeline._require_mode(mode)
        self.pipeline, self.mode, self.box = pipeline, mode, box
        ref = pipeline._ref(pipeline.prepare(static_image, static_box))
        graphs = ("enc_z", "enc_b", "enc_c") + (("enc_p",) if mode == "code" else ())
        codes = pipeline._encode_refs({(g, ref.digest): ref for g in graphs})
        self.b, self.c = codes[("enc_b", ref.digest)], codes[("enc_c", ref.digest)]
        self.p = codes.get(("enc_p", ref.digest))
        plan = _Plan(z_bg=codes[("enc_z", ref.digest)], b=self.b, c=self.c)
        self.background = pipeline._backgrounds_for([plan])[0]

    def frame(self, frame_rgb: np.ndarray) -> np.ndarray:
        """One video frame (H x W x 3 uint8 RGB) → the animated image (S x S x 3 uint8)."""
        pipe = self.pipeline
        x = pipe.prepare(frame_rgb, self.box)[None]
        if self.mode == "code":
            z = pipe._run("enc_z", {"image": x})["z"]
            phi = pipe._run("g_parent", {"z": z, "p": self.p[None]})["shape_feature"]
        else:
            phi = pipe._run("extractor", {"image": x})["shape_feature"]
        out = pipe._run("g_child", {"shape_feature": phi, "c": self.c[None], "background": self.background[None]},
                        ["image"])
        return to_uint8(out["image"][0])


def _encoders_for(kind: str, mode: str) -> tuple[str, ...]:
    if kind == "background":
        return ("enc_z", "enc_b")
    if kind == "pose":
        return ("enc_z",) if mode == "code" else ()
    return ("enc_p",) if kind == "shape" else ("enc_c",)


def _source_key(factor: Factor):
    """Key of a reference's source within one call: the same file and box are prepared once."""
    box = None if factor.box is None else tuple(factor.box)
    if isinstance(factor.image, np.ndarray):
        return ("array", id(factor.image), box)
    return ("file", os.path.abspath(factor.image), box)


def _check_feature_mix(mix: Mix) -> None:
    if not mix.pose.is_image:
        raise MnmError("feature mode: the pose must be a reference image (shape and pose both come from S(image))")
    shape = mix.shape
    if shape is None or shape is mix.pose:
        return
    if not shape.is_image or _source_key(shape) != _source_key(mix.pose):
        raise MnmError(
            "feature mode: shape and pose come from one image (the pose reference); "
            "leave the shape out or give the same image"
        )


def _label(factor: Factor | None) -> str:
    return "from pose" if factor is None else factor.label

