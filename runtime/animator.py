"""img2gif frame by frame: the static image's stages once, then per frame only the pose path.

Code mode runs ``enc_z`` → ``g_parent`` → ``g_child`` per frame (the frame gives the pose); feature
mode runs ``extractor`` → ``g_child`` (the frame gives shape and pose). The static image gives b,
c and z_bg (and p in code mode), encoded and its background generated when the animator opens.
"""

from __future__ import annotations

import numpy as np

from mnm.imaging import to_uint8
from mnm.runtime.planner import Plan, make_ref


class Animator:
    """Per-frame generation for one static image (see ``Pipeline.animator``)."""

    def __init__(self, pipeline, static_image, mode: str, box, static_box):
        pipeline.require_mode(mode)
        self.pipeline, self.mode, self.box = pipeline, mode, box
        self._executor = executor = pipeline.executor
        ref = make_ref(pipeline.prepare(static_image, static_box))
        graphs = ("enc_z", "enc_b", "enc_c") + (("enc_p",) if mode == "code" else ())
        codes = executor.encode({(g, ref.digest): ref for g in graphs})
        self.b, self.c = codes[("enc_b", ref.digest)], codes[("enc_c", ref.digest)]
        self.p = codes.get(("enc_p", ref.digest))
        plan = Plan(z_bg=codes[("enc_z", ref.digest)], b=self.b, c=self.c)
        self.background = executor.backgrounds([plan])[0]

    def frame(self, frame_rgb: np.ndarray) -> np.ndarray:
        """One video frame (H x W x 3 uint8 RGB) → the animated image (S x S x 3 uint8)."""
        run = self._executor.run
        x = self.pipeline.prepare(frame_rgb, self.box)[None]
        if self.mode == "code":
            z = run("enc_z", {"image": x})["z"]
            phi = run("g_parent", {"z": z, "p": self.p[None]})["shape_feature"]
        else:
            phi = run("extractor", {"image": x})["shape_feature"]
        out = run("g_child", {"shape_feature": phi, "c": self.c[None], "background": self.background[None]}, ["image"])
        return to_uint8(out["image"][0])
