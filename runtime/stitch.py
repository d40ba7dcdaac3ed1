"""Optional stitching (paper §4): paste a reference's real pixels back through the predicted mask.

The child mask m (1 on the object) is accurate enough that, when only some factors change, the
unchanged part can be copied from the reference instead of generated:

- ``background``: keep the generated object, take the background reference's pixels elsewhere,
  ``out = gen * m + ref_background * (1 - m)``. Meant for "only the texture changes": the
  background reference is also the shape/pose reference, so its background surrounds the object.
- ``foreground``: keep the generated background, take the pose reference's object pixels,
  ``out = ref_pose * m + gen * (1 - m)``. Meant for "only the background changes" in feature mode,
  where the object sits exactly where it is in the pose (shape/pose) reference.

Both blend with the soft mask, in the model's [-1, 1] space, on the prepared (cropped) references.
"""

from __future__ import annotations

import numpy as np

from mnm.errors import MnmError

MODES = ("background", "foreground")
SOURCE = {"background": "background", "foreground": "pose"}
"""Which factor's reference image each mode copies pixels from."""


def check_mode(mode: str | None) -> str | None:
    if mode is not None and mode not in MODES:
        raise MnmError(f"stitch: expected one of {', '.join(MODES)}, got {mode!r}")
    return mode


def stitch(mode: str, generated: np.ndarray, child_mask: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Blend ``reference`` into ``generated`` (both 3 x S x S in [-1, 1]) by ``child_mask`` (1 x S x S)."""
    mask = np.clip(child_mask, 0.0, 1.0)
    if mode == "background":
        return generated * mask + reference * (1.0 - mask)
    if mode == "foreground":
        return reference * mask + generated * (1.0 - mask)
    raise MnmError(f"stitch: expected one of {', '.join(MODES)}, got {mode!r}")
