"""The Inception-v3 of the FID reference (TensorFlow's 2015-12-05 graph), for pool-3 features.

Weights come only from a local file the user names (we download nothing and unpickle nothing).
Accepted: ONE safetensors file holding the state dict of pytorch-fid's port of those weights
(``pt_inception-2015-12-05-6726825d.pth``, from github.com/mseitzer/pytorch-fid releases,
tag ``fid_weights``) under its key names — torchvision's Inception3 layout:
``Conv2d_1a_3x3.conv.weight``, ``Conv2d_1a_3x3.bn.{weight,bias,running_mean,running_var}``, ...,
``Mixed_7c.branch_pool.bn.running_var``. ``fc.*`` (1008 classes), ``AuxLogits.*`` and
``*.num_batches_tracked`` may be present and are ignored; every other tensor must match.
The ``.pth`` file is a pickle: convert it once with the command in ``CONVERT``.

The network differs from torchvision's Inception3 as the TF graph does: average pools inside
Mixed_5*, Mixed_6b-e and Mixed_7b ignore the zero padding, and Mixed_7c pools with max.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mnm.errors import MnmError

INPUT_SIDE = 299
RESIZE = "bilinear, align_corners=False, no antialiasing (torch.nn.functional.interpolate), S -> 299x299, " \
         "on images in [-1, 1] (as pytorch-fid)"
DEFAULT_NAME = "inception-2015-12-05.safetensors"
PTH_NAME = "pt_inception-2015-12-05-6726825d.pth"
SOURCE = f"{PTH_NAME} from https://github.com/mseitzer/pytorch-fid/releases (tag fid_weights)"
CONVERT = (
    "python -c \"import torch, safetensors.torch as st; "
    f"sd = torch.load('{PTH_NAME}', map_location='cpu', weights_only=True); "
    f"st.save_file({{k: v.contiguous() for k, v in sd.items()}}, '{DEFAULT_NAME}')\""
)
IGNORED_PREFIXES = ("fc.", "AuxLogits.")


def default_weights_path() -> Path:
    """Where the weights are looked for without --inception-weights: $XDG_CACHE_HOME/mnm (~/.cache/mnm)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "mnm" / DEFAULT_NAME


def weights_path(given: str | os.PathLike | None) -> Path:
    """The weights file to use, or one line saying where to put it and how to get it."""
    path = default_weights_path() if given is None else Path(given)
    if not path.is_file():
        what = "no Inception weights at the default place" if given is None else "Inception weights file not found"
        raise MnmError(
            f"{path}: {what}; FID/KID need the TF 2015-12-05 FID Inception as safetensors: "
            f"get {SOURCE}, convert it with: {CONVERT} , then pass --inception-weights FILE or put it at "
            f"{default_weights_path()}"
        )
    return path


class BasicConv(nn.Module):
    """conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel, stride: int = 1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average that, like TensorFlow's, divides by the taps inside the image."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _max_pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


def _chain(x: torch.Tensor, *layers: nn.Module) -> torch.Tensor:
    for layer in layers:
        x = layer(x)
    return x


class MixedA(nn.Module):
    """Mixed_5b/c/d (35x35): 1x1, 5x5, double 3x3 and pool branches."""

    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv(cin, 64, 1)
        self.branch5x5_1 = BasicConv(cin, 48, 1)
        self.branch5x5_2 = BasicConv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv(96, 96, 3, padding=1)
        self.branch_pool = BasicConv(cin, pool_features, 1)

    def forward(self, x):
        return torch.cat([
            self.branch1x1(x),
            _chain(x, self.branch5x5_1, self.branch5x5_2),
            _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
            self.branch_pool(_avg_pool(x)),
        ], 1)


class MixedB(nn.Module):
    """Mixed_6a: 35x35 -> 17x17."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv(96, 96, 3, stride=2)

    def forward(self, x):
        return torch.cat([
            self.branch3x3(x),
            _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class MixedC(nn.Module):
    """Mixed_6b-e (17x17): factorised 7x7 branches of width ``c7``."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
        self.branch1x1 = BasicConv(cin, 192, 1)
        self.branch7x7_1 = BasicConv(cin, c7, 1)
        self.branch7x7_2 = BasicConv(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = BasicConv(c7, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = BasicConv(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = BasicConv(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = BasicConv(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = BasicConv(c7, 192, row[0], padding=row[1])
        self.branch_pool = BasicConv(cin, 192, 1)

    def forward(self, x):
        return torch.cat([
            self.branch1x1(x),
            _chain(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3),
            _chain(x, self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                   self.branch7x7dbl_5),
            self.branch_pool(_avg_pool(x)),
        ], 1)


class MixedD(nn.Module):
    """Mixed_7a: 17x17 -> 8x8."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv(cin, 192, 1)
        self.branch3x3_2 = BasicConv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv(192, 192, 3, stride=2)

    def forward(self, x):
        return torch.cat([
            _chain(x, self.branch3x3_1, self.branch3x3_2),
            _chain(x, self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class MixedE(nn.Module):
    """Mixed_7b/c (8x8): split 1x3/3x1 branches; ``pool`` is "avg" (7b) or "max" (7c, as in the TF graph)."""

    def __init__(self, cin: int, pool: str):
        super().__init__()
        self.pool = _avg_pool if pool == "avg" else _max_pool
        self.branch1x1 = BasicConv(cin, 320, 1)
        self.branch3x3_1 = BasicConv(cin, 384, 1)
        self.branch3x3_2a = BasicConv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv(cin, 192, 1)

    def forward(self, x):
        h = self.branch3x3_1(x)
        d = _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(h), self.branch3x3_2b(h),
            self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d),
            self.branch_pool(self.pool(x)),
        ], 1)


class FIDInception(nn.Module):
    """images [N, 3, H, W] in [-1, 1] (any H, W) -> pool-3 features [N, 2048]."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv(80, 192, 3)
        self.Mixed_5b = MixedA(192, 32)
        self.Mixed_5c = MixedA(256, 64)
        self.Mixed_5d = MixedA(288, 64)
        self.Mixed_6a = MixedB(288)
        self.Mixed_6b = MixedC(768, 128)
        self.Mixed_6c = MixedC(768, 160)
        self.Mixed_6d = MixedC(768, 160)
        self.Mixed_6e = MixedC(768, 192)
        self.Mixed_7a = MixedD(768)
        self.Mixed_7b = MixedE(1280, "avg")
        self.Mixed_7c = MixedE(2048, "max")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=(INPUT_SIDE, INPUT_SIDE), mode="bilinear", align_corners=False)
        x = _chain(x, self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3)
        x = F.max_pool2d(x, 3, stride=2)
        x = _chain(x, self.Conv2d_3b_1x1, self.Conv2d_4a_3x3)
        x = F.max_pool2d(x, 3, stride=2)
        x = _chain(x, self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                   self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c)
        return x.mean(dim=(2, 3))


def _is_pickle(path: Path) -> bool:
    """A PyTorch .pth: a zip archive (torch >= 1.6) or a bare pickle stream (protocol >= 2)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _shapes(path: Path) -> dict[str, list[int]]:
    """Tensor names and shapes from the safetensors header, without reading the data."""
    from safetensors import SafetensorError, safe_open

    if _is_pickle(path):
        raise MnmError(f"{path}: a PyTorch pickle file, which mnm never loads (unpickling runs code); convert "
                       f"it once to safetensors with: {CONVERT} , then pass --inception-weights {DEFAULT_NAME}")
    try:
        with safe_open(str(path), framework="pt") as f:
            names = f.keys()  # safe_open objects are not iterable
            return {k: list(f.get_slice(k).get_shape()) for k in names}
    except (SafetensorError, OSError, ValueError) as exc:
        raise MnmError(f"{path}: not a readable safetensors file ({exc}); expected the FID Inception "
                       f"weights converted from {PTH_NAME}") from None


def _used(name: str) -> bool:
    return not name.startswith(IGNORED_PREFIXES) and not name.endswith("num_batches_tracked")


def check_weights(path: str | os.PathLike) -> None:
    """Raise one line unless ``path`` is a safetensors file with exactly the network's tensors."""
    path = Path(path)
    found = {k: v for k, v in _shapes(path).items() if _used(k)}
    expected = {k: list(v.shape) for k, v in FIDInception().state_dict().items() if _used(k)}
    problems = [f"{k} is {v}, expected {expected[k]}" for k, v in found.items() if k in expected and v != expected[k]]
    problems += [f"{k} unexpected" for k in found if k not in expected]
    problems += [f"{k} missing" for k in expected if k not in found]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise MnmError(f"{path}: not the FID Inception weights ({len(problems)} mismatches, e.g. "
                       f"{'; '.join(problems[:3])}{more}); expected a conversion of {PTH_NAME}")


def load_inception(path: str | os.PathLike) -> FIDInception:
    """The network with the weights of ``path`` (a safetensors file, see the module docstring), eval mode."""
    from safetensors.torch import load_file

    check_weights(path)
    net = FIDInception()
    tensors = load_file(str(path), device="cpu")
    net.load_state_dict({k: v for k, v in tensors.items() if _used(k)}, strict=False)
    return net.eval()
