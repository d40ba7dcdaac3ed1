"""What ``mnm demo`` renders with the bundled demo model, and the files shipped from the same scenes.

The references are rendered with the synthetic-scene generator the demo model was trained on (same
seed and families; images from the held-out test split), so nothing has to be downloaded or shipped
besides the bundle. torch is never imported. The same eight references are shipped as files:
``write_examples`` (``examples/inputs``) and ``write_gallery`` (the web page's gallery). It sits
with the CLI because it needs both the runtime and ``mnm.training.synthetic``; the demo model's
facts are ``mnm.demo``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mnm.demo import DEMO_DIR, demo_info, is_demo_bundle, model_note

CLIP_FRAMES = 36
FRAME_SIDE = 96


@dataclass
class DemoResult:
    files: dict[str, Path]
    summary: list[str]


def run_demo(out: Path, bundle: Path | None = None, backend: str = "auto") -> DemoResult:
    """Write a mix-and-match grid pair, a code-vs-feature comparison and an img2gif animation to ``out``."""
    from mnm.imaging import save_image
    from mnm.runtime import grid as grid_layout
    from mnm.runtime.pipeline import Pipeline
    from mnm.training.synthetic import SynthSpec, render_scene

    info = demo_info()
    spec = SynthSpec.from_dict(info["data"], source=str(DEMO_DIR / "demo.json"))
    pipeline = Pipeline(bundle or DEMO_DIR / "bundle", backend=backend)
    out.mkdir(parents=True, exist_ok=True)
    refs = _references(spec, render_scene)
    files: dict[str, Path] = {}

    # Background x texture with one shape and pose; shape x pose with one background and texture.
    a, b = refs[:3], refs[3:6]
    grid = pipeline.grid(background=[r.factor for r in a], pose=[refs[6].factor], shape=[refs[6].factor],
                         texture=[r.factor for r in b], mode="code")
    files["grid_background_texture"] = out / "grid_background_texture.png"
    save_image(files["grid_background_texture"], grid.image())
    grid = pipeline.grid(background=[refs[7].factor], pose=[r.factor for r in a], shape=[r.factor for r in b],
                         texture=[refs[7].factor], mode="code")
    files["grid_shape_pose"] = out / "grid_shape_pose.png"
    save_image(files["grid_shape_pose"], grid.image())

    # Code mode (p and z from B) against feature mode (S(B)): background and texture from A.
    pairs = list(zip(refs[:4], refs[4:8], strict=True))
    cells = []
    for ref_a, ref_b in pairs:
        for mode in ("code", "feature"):
            shape = ref_b.image if mode == "code" else None
            cells.append(pipeline.mix(background=ref_a.image, pose=ref_b.image, shape=shape,
                                      texture=ref_a.image, mode=mode))
    heads = [grid_layout.Axis(factor, [pair[side].image for pair in pairs], [pair[side].name for pair in pairs])
             for factor, side in (("background", 0), ("texture", 0), ("pose", 1), ("shape", 1))]
    image = grid_layout.compose(
        cells, rows=heads, cols=grid_layout.Axis("mode", [None, None], ["code mode", "feature mode"]),
        caption="code mode: the shape's code from the shape image; feature mode: shape and pose from S(pose image)",
    )
    files["code_vs_feature"] = out / "code_vs_feature.png"
    save_image(files["code_vs_feature"], image)

    # img2gif: a synthetic clip of one bird turning, animating the still image A.
    clip = _clip(spec, refs[4])
    files["clip"] = _write_clip(out / "clip", clip)
    report = _animate(pipeline, refs[0].image, files["clip"], out / "animation.gif")
    files["animation"] = out / "animation.gif"
    summary = [model_note()] if bundle is None or is_demo_bundle(bundle) else []
    summary.append(f"backend: {pipeline.backend.description}")
    summary += [f"{name}: {path}" for name, path in files.items()]
    summary.append("animation: " + "; ".join(report.summary_lines()))
    return DemoResult(files, summary)


EXAMPLES_README = """# Example inputs

Made by this project: the eight references of `mnm demo` (held-out scenes of the synthetic birds
the demo model was trained on, named by what they show: bird pattern, then background) and
`clip.mp4`, one of them turning (36 frames, 12 fps). Written by `scripts/make_example_inputs.py`
with mnm's synthetic-bird generator. Licence: MIT, as the rest of mnm.
"""


def write_examples(folder: Path) -> list[Path]:
    """The shipped example inputs: the eight ``mnm demo`` references as ``NAME.png`` (named by what
    they show) and ``clip.mp4``, the demo's clip of one bird turning. ``scripts/make_example_inputs.py``
    writes them into ``examples/inputs`` once; a test checks the shipped files are what this writes."""
    from mnm.atomic import atomic_dir
    from mnm.imaging import save_image
    from mnm.runtime.video import Mp4Sink
    from mnm.training.synthetic import SynthSpec, render_scene

    spec = SynthSpec.from_dict(demo_info()["data"], source=str(DEMO_DIR / "demo.json"))
    refs = _references(spec, render_scene)
    with atomic_dir(folder) as tmp:
        for ref in refs:
            save_image(tmp / f"{ref.name}.png", ref.image)
        sink = Mp4Sink(tmp / "clip.mp4", fps=12.0)
        for frame in _clip(spec, refs[4]):
            sink.write(frame)
        sink.close()
        (tmp / "README.md").write_text(EXAMPLES_README)
    return [folder / f"{ref.name}.png" for ref in refs] + [folder / "clip.mp4"]


def write_gallery(folder: Path) -> list[dict]:
    """The web page's demo references: the eight ``mnm demo`` references as PNGs plus ``gallery.json``.

    ``scripts/make_web_gallery.py`` writes them into the server's static files once (package data),
    so the page offers them with nothing rendered or downloaded at run time.
    """
    import json

    from mnm.atomic import atomic_dir
    from mnm.imaging import save_image
    from mnm.training.synthetic import SynthSpec, render_scene

    spec = SynthSpec.from_dict(demo_info()["data"], source=str(DEMO_DIR / "demo.json"))
    entries = []
    with atomic_dir(folder) as tmp:
        for ref in _references(spec, render_scene):
            name = f"demo{ref.index + 1}.png"
            save_image(tmp / name, ref.image)
            entries.append({"file": name, "label": f"demo image {ref.index + 1}: {_describe(spec, ref.factors)}"})
        (tmp / "gallery.json").write_text(json.dumps({"images": entries}, indent=1) + "\n")
    return entries


PATTERN_WORDS = {"solid": "plain", "stripes": "striped", "spots": "spotted", "gradient": "shaded",
                 "two_tone": "two-tone", "belly": "pale-bellied"}


def _words(spec, factors) -> tuple[str, str]:
    """The bird's pattern and the background's, in words."""
    from mnm.training.synthetic.backgrounds import background_family
    from mnm.training.synthetic.textures import texture

    pattern = texture(spec.seed, factors.c, spec.textures_per_shape).pattern
    return PATTERN_WORDS.get(pattern, pattern), background_family(spec.seed, factors.b).pattern


def _describe(spec, factors) -> str:
    """Words for a scene (the page's alt text)."""
    bird, background = _words(spec, factors)
    return f"a {bird} bird, {background} background"


@dataclass
class _Ref:
    image: np.ndarray
    name: str  # what it shows, e.g. "spotted-water": its file name in examples/inputs and its label in grids
    index: int  # the scene's number in the demo model's data
    factors: object

    @property
    def factor(self):
        from mnm.runtime.requests import Factor

        return Factor(image=self.image, label=self.name)


def _references(spec, render_scene) -> list[_Ref]:
    """Eight held-out images (ids divisible by 10), with textures as different as the set allows."""
    from mnm.training.synthetic import sample_factors

    chosen, seen = [], set()
    index = 9
    while len(chosen) < 8 and index < 100_000:
        factors = sample_factors(spec, index)
        if factors.c not in seen or len(seen) >= spec.n_child:
            seen.add(factors.c)
            scene = render_scene(spec, index)
            chosen.append(_Ref(scene.image, "-".join(_words(spec, factors)), index, factors))
        index += 10
    return chosen


def _clip(spec, ref: _Ref) -> list[np.ndarray]:
    """The bird of ``ref`` swaying and turning: rotation and position follow a smooth loop."""
    from mnm.training.synthetic import Pose, render_from_factors

    f = ref.factors
    frames = []
    for t in np.linspace(0, 2 * np.pi, CLIP_FRAMES, endpoint=False):
        pose = Pose(rotation=f.pose.rotation * 0.3 + 18 * np.sin(t), scale=f.pose.scale,
                    tx=f.pose.tx * 0.5 + 0.06 * np.sin(t), ty=f.pose.ty * 0.5 + 0.04 * np.cos(t),
                    facing=f.pose.facing if t < np.pi else -f.pose.facing)
        frames.append(render_from_factors(spec, f.b, f.p, f.c, pose, f.background_key, f.texture_key).image)
    return frames


def _write_clip(folder: Path, frames: list[np.ndarray]) -> Path:
    from mnm.atomic import atomic_dir
    from mnm.imaging import save_image

    with atomic_dir(folder) as tmp:
        for i, frame in enumerate(frames):
            save_image(tmp / f"{i:04d}.png", frame)
    return folder


ANIMATION_LABELS = ["source frame", "still image", "result (code)", "result (feature)"]


def _animate(pipeline, static: np.ndarray, clip: Path, out: Path):
    """Run the real-time loop over the clip: each output frame shows, labelled, the source frame, the
    still image it animates and the results of code and feature mode."""
    from mnm.runtime import grid as grid_layout
    from mnm.runtime import realtime
    from mnm.runtime.video import FolderSource, GifSink

    code = pipeline.animator(static, mode="code")
    feature = pipeline.animator(static, mode="feature")
    header = grid_layout.Axis("", [None] * len(ANIMATION_LABELS), ANIMATION_LABELS)

    def side_by_side(frame: np.ndarray) -> np.ndarray:
        tiles = [frame, static, code.frame(frame), feature.frame(frame)]
        tiles = [cv2.resize(t, (FRAME_SIDE, FRAME_SIDE), interpolation=cv2.INTER_AREA
                            if t.shape[0] > FRAME_SIDE else cv2.INTER_NEAREST) for t in tiles]
        return grid_layout.compose(tiles, rows=[], cols=header)

    report = realtime.run(FolderSource(clip), side_by_side, GifSink(out, fps=12.0))
    if report.error is not None:
        raise report.error
    return report
