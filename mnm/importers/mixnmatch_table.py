"""The name table of the authors' published MixNMatch files: their module paths -> ours.

A plain data table (no torch), read by ``mnm.importers.mixnmatch`` and documented in
docs/importer.md. Tensors are mapped by name through it, never by position.
"""

from __future__ import annotations

from dataclasses import dataclass

ENCODER_KINDS = ("z", "b", "p", "c")
"""E.pth's four encoders model_z, model_b, model_p, model_c, and ours encoders.z, .b, .p, .c."""

# The authors' module paths (after "module.") -> ours, one row per module.
# A tensor's name is its module path plus the parameter or buffer name (weight, bias,
# running_mean, running_var, num_batches_tracked), which carries over unchanged; rows ending in
# ".block" cover a whole ResBlock (conv 0, BN 1, conv 3, BN 4 on both sides).
# (theirs, ours, count): a row stands for `count` numbered modules, "{n}" counting from 1 as the
# authors' names do, "{i}" from 0 as ours do; "{k}" runs over the encoders z, b, p, c.

GENERATOR_TABLE = (  # G.pth: G_NET, the EMA generator
    ("background_stage.fc.0", "generator_ema.background.stem.fc.0", 1),  # Linear(Z + N_b, 2·16·8·ngf)
    ("background_stage.fc.1", "generator_ema.background.stem.fc.1", 1),  # its BatchNorm1d (then GLU)
    ("background_stage.upsample{n}.1", "generator_ema.background.stem.up.{i}.1", 5),  # upBlock conv3×3
    ("background_stage.upsample{n}.2", "generator_ema.background.stem.up.{i}.2", 5),  # upBlock BatchNorm
    ("background_image.img.0", "generator_ema.background.image.0", 1),  # conv3×3 to RGB (tanh)
    ("parent_stage.fc.0", "generator_ema.parent.stem.fc.0", 1),  # Linear(Z + N_p, 2·16·8·ngf)
    ("parent_stage.fc.1", "generator_ema.parent.stem.fc.1", 1),
    ("parent_stage.upsample{n}.1", "generator_ema.parent.stem.up.{i}.1", 5),
    ("parent_stage.upsample{n}.2", "generator_ema.parent.stem.up.{i}.2", 5),
    ("parent_stage.jointConv.0", "generator_ema.parent.joint.conv", 1),  # conv over concat(h, p): h first
    ("parent_stage.jointConv.1", "generator_ema.parent.joint.bn", 1),
    ("parent_stage.residual.{i}.block", "generator_ema.parent.residual.{i}.block", 3),
    ("parent_image.img.0", "generator_ema.child.parent_image.0", 1),  # our child graph composes the parent
    ("parent_mask.img.0", "generator_ema.child.parent_mask.0", 1),
    ("child_stage.jointConv.0", "generator_ema.child.joint.conv", 1),  # conv over concat(c, φ): c first
    ("child_stage.jointConv.1", "generator_ema.child.joint.bn", 1),
    ("child_stage.residual.{i}.block", "generator_ema.child.residual.{i}.block", 2),
    ("child_stage.samesample.0", "generator_ema.child.same.0", 1),
    ("child_stage.samesample.1", "generator_ema.child.same.1", 1),
    ("child_image.img.0", "generator_ema.child.child_image.0", 1),
    ("child_mask.img.0", "generator_ema.child.child_mask.0", 1),
)

ENCODERS_TABLE = (  # E.pth: Encoder, four nets model_z/b/p/c; the first Sequential is encode_img
    ("model_{k}.0.0", "encoders.{k}.trunk.0.0.0", 1),  # conv4 s2 3 -> ndf (no BatchNorm)
    ("model_{k}.0.2", "encoders.{k}.trunk.0.1.0", 1),  # conv4 s2 ndf -> 2·ndf
    ("model_{k}.0.3", "encoders.{k}.trunk.0.1.1", 1),
    ("model_{k}.0.5", "encoders.{k}.trunk.0.2.0", 1),  # -> 4·ndf
    ("model_{k}.0.6", "encoders.{k}.trunk.0.2.1", 1),
    ("model_{k}.0.8", "encoders.{k}.trunk.0.3.0", 1),  # -> 8·ndf
    ("model_{k}.0.9", "encoders.{k}.trunk.0.3.1", 1),
    ("model_{k}.1.0", "encoders.{k}.trunk.0.4.0", 1),  # downBlock 8·ndf -> 16·ndf at 4×4
    ("model_{k}.1.1", "encoders.{k}.trunk.0.4.1", 1),
    ("model_{k}.2.0", "encoders.{k}.trunk.1.0", 1),  # Block3x3_leakRelu 16·ndf -> 8·ndf
    ("model_{k}.2.1", "encoders.{k}.trunk.1.1", 1),
    ("model_{k}.3.0", "encoders.{k}.trunk.2.0", 1),  # Block3x3_leakRelu 8·ndf -> 8·ndf
    ("model_{k}.3.1", "encoders.{k}.trunk.2.1", 1),
    ("model_{k}.4", "encoders.{k}.head", 1),  # conv4 stride 4 -> the code (z: then 4·tanh)
)

EXTRACTOR_TABLE = (  # EX.pth: FeatureExtractor, the U-Net S of feature mode
    ("first.{i}.0", "extractor.first.{i}.0", 2),  # two sameBlocks: conv3×3 ...
    ("first.{i}.1", "extractor.first.{i}.1", 2),  # ... and BatchNorm
    ("down{n}.0", "extractor.down.{i}.0", 6),  # Down_unet conv4 s2 (with bias)
    ("down{n}.1", "extractor.down.{i}.1", 6),
    ("up{n}.0", "extractor.up.{i}.0", 6),  # Up_unet transposed conv4 s2 (with bias)
    ("up{n}.1", "extractor.up.{i}.1", 6),
    ("last.{i}.block", "extractor.last.{i}.block", 2),  # two ResBlocks at F channels
)


@dataclass(frozen=True)
class Slot:
    """One of the three input files."""

    option: str  # the command-line option that takes it
    usual_name: str  # the authors' file name
    describes: str  # what it holds, for messages
    prefix: str  # our checkpoint's tensor prefix
    table: tuple


SLOTS = {
    "generator": Slot("--generator", "G.pth", "the generator", "generator_ema", GENERATOR_TABLE),
    "encoders": Slot("--encoders", "E.pth", "the encoders", "encoders", ENCODERS_TABLE),
    "extractor": Slot("--extractor", "EX.pth", "the feature extractor", "extractor", EXTRACTOR_TABLE),
}


def module_pairs(slot: str) -> list[tuple[str, str]]:
    """The table of ``slot`` expanded: (their module path, our module path) for every module."""
    pairs = []
    for theirs, ours, count in SLOTS[slot].table:
        for kind in ENCODER_KINDS if "{k}" in theirs else (None,):
            for i in range(count):
                fill = {"i": i, "n": i + 1, "k": kind}
                pairs.append((theirs.format(**fill), ours.format(**fill)))
    return pairs


def top_level_names(slot: str) -> set[str]:
    """The first name component of every tensor of ``slot``'s file (``model_z``, ``background_stage``, ...)."""
    return {theirs.split(".", 1)[0] for theirs, _ in module_pairs(slot)}
