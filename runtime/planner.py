"""Planning: from the mixes a caller asks for to the inputs of each ``g_child`` run.

A plan resolves every factor once (a ``random`` factor is sampled once per ``Factor.key``, so
mixes that share the factor share the sample), prepares each distinct reference image once, and
asks for only the encoders the request needs: a background reference runs E_z and E_b, a pose
reference E_z (code mode; in feature mode it feeds S instead), a shape reference E_p, a texture
reference E_c. ``code:``, ``seed:`` and ``random`` factors run no encoder. See docs/runtime.md.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mnm.config import ModelConfig
from mnm.errors import MnmError
from mnm.runtime import stitch as stitching
from mnm.runtime.requests import Factor, Mix

ENCODER_OF = {"z": "enc_z", "b": "enc_b", "p": "enc_p", "c": "enc_c"}


@dataclass
class Ref:
    """A prepared reference image: model input and its content key."""

    array: np.ndarray  # 3 x S x S float32 in [-1, 1]
    digest: str


def make_ref(array: np.ndarray) -> Ref:
    array = np.ascontiguousarray(array, dtype=np.float32)
    return Ref(array, hashlib.sha256(array.tobytes()).hexdigest())


@dataclass
class Plan:
    """The inputs of one g_child run, before the cached stages are looked up."""

    z_bg: np.ndarray
    b: np.ndarray
    c: np.ndarray
    z_pose: np.ndarray | None = None
    p: np.ndarray | None = None
    feature_ref: Ref | None = None
    shape_feature: np.ndarray | None = None
    refs: dict[str, Ref] = field(default_factory=dict)  # factor -> reference, for stitching


EncodeJobs = dict[tuple[str, str], Ref]
"""(encoder graph, reference digest) -> reference: the encodings a request needs."""


def plan_mixes(
    mixes: list[Mix],
    mode: str,
    rng: np.random.Generator,
    stitch: str | None,
    config: ModelConfig,
    prepare: Callable[..., np.ndarray],
    encode: Callable[[EncodeJobs], dict[tuple[str, str], np.ndarray]],
) -> list[Plan]:
    """One ``Plan`` per mix; ``prepare(image, box)`` makes a model input, ``encode(jobs)`` runs the encoders."""
    resolved: dict[int, Factor] = {}  # Factor.key -> its concrete factor: one sample per factor
    refs: dict[object, Ref] = {}  # source key -> prepared reference
    jobs: EncodeJobs = {}
    wanted = []  # per mix: {factor: Factor or Ref}
    for mix in mixes:
        if mode == "feature":
            check_feature_mix(mix)  # the shape comes from S(pose reference)
            shape = None
        else:
            shape = mix.shape if mix.shape is not None else Factor(label="random")
        entry = {}
        for kind, factor in (("background", mix.background), ("pose", mix.pose),
                             ("shape", shape), ("texture", mix.texture)):
            if factor is None:
                continue
            if factor.key not in resolved:
                resolved[factor.key] = factor.resolve(kind, config, rng)
            factor = resolved[factor.key]
            if factor.is_image:
                key = source_key(factor)
                if key not in refs:
                    refs[key] = make_ref(prepare(factor.image, factor.box))
                ref = refs[key]
                for graph in encoders_for(kind, mode):
                    jobs[(graph, ref.digest)] = ref
                entry[kind] = ref
            else:
                entry[kind] = factor
        if stitch and not isinstance(entry.get(stitching.SOURCE[stitch]), Ref):
            raise MnmError(f"stitch {stitch}: the {stitching.SOURCE[stitch]} must be a reference image")
        wanted.append(entry)
    codes = encode(jobs)
    plans = []
    for entry in wanted:
        bg, pose, texture = entry["background"], entry["pose"], entry["texture"]
        plan = Plan(
            z_bg=codes[("enc_z", bg.digest)] if isinstance(bg, Ref) else bg.z,
            b=codes[("enc_b", bg.digest)] if isinstance(bg, Ref) else bg.code,
            c=codes[("enc_c", texture.digest)] if isinstance(texture, Ref) else texture.code,
            refs={k: v for k, v in entry.items() if isinstance(v, Ref)},
        )
        if mode == "feature":
            plan.feature_ref = pose
        else:
            shape = entry["shape"]
            plan.z_pose = codes[("enc_z", pose.digest)] if isinstance(pose, Ref) else pose.z
            plan.p = codes[("enc_p", shape.digest)] if isinstance(shape, Ref) else shape.code
        plans.append(plan)
    return plans


def encoders_for(kind: str, mode: str) -> tuple[str, ...]:
    """The encoder graphs a reference image given as factor ``kind`` runs through."""
    if kind == "background":
        return ("enc_z", "enc_b")
    if kind == "pose":
        return ("enc_z",) if mode == "code" else ()
    return ("enc_p",) if kind == "shape" else ("enc_c",)


def source_key(factor: Factor):
    """Key of a reference's source within one call: the same file and box are prepared once."""
    box = None if factor.box is None else tuple(factor.box)
    if isinstance(factor.image, np.ndarray):
        return ("array", id(factor.image), box)
    return ("file", os.path.abspath(factor.image), box)


def check_feature_mix(mix: Mix) -> None:
    """Feature mode takes shape and pose from S(pose reference): the shape must be absent or that image."""
    if not mix.pose.is_image:
        raise MnmError("feature mode: the pose must be a reference image (shape and pose both come from S(image))")
    shape = mix.shape
    if shape is None or shape is mix.pose:
        return
    if not shape.is_image or source_key(shape) != source_key(mix.pose):
        raise MnmError(
            "feature mode: shape and pose come from one image (the pose reference); "
            "leave the shape out or give the same image"
        )
