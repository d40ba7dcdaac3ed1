"""Synthetic bird scenes with ground truth (docs/data.md): the data behind `mnm data synth`.

numpy + OpenCV only (no torch), so it runs anywhere. A scene is fully determined by the dataset
parameters (``SynthSpec``) and the image index; ``render_from_factors`` renders any chosen
combination of background, shape, texture and pose for evaluation against the truth.
"""

from mnm.training.synthetic.pose import Pose
from mnm.training.synthetic.render import Factors, Scene, render_from_factors, render_scene, sample_factors
from mnm.training.synthetic.shapes import KEYPOINTS
from mnm.training.synthetic.spec import SynthSpec
from mnm.training.synthetic.writer import render_dataset

__all__ = ["KEYPOINTS", "Factors", "Pose", "Scene", "SynthSpec", "render_dataset", "render_from_factors",
           "render_scene", "sample_factors"]
