"""What a user asks for: the four factors of a mix, parsed from the CLI, Python values or a plan CSV.

A factor is a reference image (optionally with its object box), or codes, or nothing (sampled).
The CLI spelling is one of: an image path, ``random``, ``code:K`` (the category index of b, p or c)
or ``seed:N`` (z from ``mnm.codes.z_from_seed``: the background's z_bg or the pose's z_pose).

Which codes each factor carries (docs/runtime.md, "What each factor gives"):

- background: b and z_bg; an image gives both (E_b, E_z); ``code:K`` sets b and samples z_bg,
  ``seed:N`` sets z_bg and samples b; ``Factor(code=K, z=N)`` sets both;
- pose: z_pose; an image gives E_z(image), ``seed:N`` or a z vector sets it (no ``code:``);
- shape: p; an image gives E_p(image), ``code:K`` or a vector sets it (no ``seed:``);
- texture: c; likewise from E_c.

Images are not decoded here (the pipeline prepares them, once per distinct reference); a folder or a
glob pattern given as one CLI value is expanded to the images it names (``expand_specs``).
"""

from __future__ import annotations

import glob
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnm.codes import as_categorical, z_from_seed
from mnm.config import ModelConfig
from mnm.errors import MnmError
from mnm.imaging import IMAGE_SUFFIXES, image_files, natural_key

FACTORS = ("background", "pose", "shape", "texture")
CODE_OF = {"background": "b", "shape": "p", "texture": "c"}
"""The categorical code each factor sets (pose has none)."""
HAS_Z = ("background", "pose")

_SPEC = re.compile(r"^(code|seed):(-?\d+)$")
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_BOX_LINE = re.compile(rf"^(.+?)[\s,]+((?:{_NUM}[\s,]+){{3}}{_NUM})$")
_KEYS = itertools.count()


@dataclass(frozen=True, eq=False)
class Factor:
    """One factor of a mix. All fields empty means "sample it" (``random``).

    ``image``: a path or an H x W x 3 uint8 array; ``box``: its object box (x, y, w, h) pixels.
    ``code``: index or probability vector of b / p / c. ``z``: a seed (int) or a z vector.
    ``label``: how grids and logs show it (default: from the fields). ``key``: a number unique in
    the process, given at construction: a ``random`` factor is sampled once per key, so mixes that
    share a factor share its sample (``dataclasses.replace`` makes a new factor with a new key).
    """

    image: str | os.PathLike | np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    code: int | np.ndarray | None = None
    z: int | np.ndarray | None = None
    label: str = ""
    key: int = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "key", next(_KEYS))
        if not self.label:
            object.__setattr__(self, "label", _default_label(self))

    @property
    def is_image(self) -> bool:
        return self.image is not None

    def check(self, kind: str) -> Factor:
        """Refuse fields this kind of factor does not have; the factor itself when it is fine."""
        if kind not in FACTORS:
            raise MnmError(f"unknown factor {kind!r}; factors are {', '.join(FACTORS)}")
        if self.image is not None and (self.code is not None or self.z is not None):
            raise MnmError(f"{kind}: give a reference image or codes, not both")
        if self.image is None and self.box is not None:
            raise MnmError(f"{kind}: a box needs a reference image")
        if self.code is not None and kind not in CODE_OF:
            raise MnmError(f"{kind}: has no category code; use seed:N or a z vector")
        if self.z is not None and kind not in HAS_Z:
            raise MnmError(f"{kind}: has no z; use code:K or a {CODE_OF[kind]} vector")
        return self

    def resolve(self, kind: str, cfg: ModelConfig, rng: np.random.Generator) -> Factor:
        """Concrete codes for a code factor: seeds become z vectors, missing codes are sampled from ``rng``.

        Images pass through (the encoders resolve them). b, p and c are sampled uniformly and
        independently: a mix may pair any shape with any texture.
        """
        if self.is_image:
            return self
        dims = cfg.code_dims()
        code = z = None
        if kind in CODE_OF:
            n = dims[CODE_OF[kind]]
            code = (
                as_categorical(int(rng.integers(n)), n)
                if self.code is None
                else as_categorical(self.code, n, name=f"{kind} code {CODE_OF[kind]}")
            )
        if kind in HAS_Z:
            if self.z is None:
                z = rng.standard_normal(cfg.z_dim).astype(np.float32)
            elif isinstance(self.z, (int, np.integer)) and not isinstance(self.z, bool):
                z = z_from_seed(int(self.z), cfg.z_dim)
            else:
                z = np.asarray(self.z, dtype=np.float32).reshape(-1)
                if z.shape != (cfg.z_dim,) or not np.isfinite(z).all():
                    raise MnmError(f"{kind}: z must be {cfg.z_dim} finite numbers, got shape {z.shape}")
        return Factor(code=code, z=z, label=self.label)


@dataclass(frozen=True)
class Mix:
    """One combination of the four factors (``shape`` None: sampled in code mode, from the pose in feature mode)."""

    background: Factor
    pose: Factor
    shape: Factor | None
    texture: Factor


def _default_label(f: Factor) -> str:
    if f.image is not None:
        return Path(f.image).name if not isinstance(f.image, np.ndarray) else "image"
    parts = []
    if isinstance(f.code, (int, np.integer)):
        parts.append(f"code:{int(f.code)}")
    elif f.code is not None:
        parts.append(f"code:{int(np.argmax(f.code))}~")
    if isinstance(f.z, (int, np.integer)):
        parts.append(f"seed:{int(f.z)}")
    elif f.z is not None:
        parts.append("z")
    return " ".join(parts) or "random"


def parse_factor(value, kind: str, boxes: BoxTable | None = None) -> Factor:
    """A Python value or CLI spec → ``Factor``.

    Accepted: a ``Factor``; a string (``random``, ``code:K``, ``seed:N`` or an image path); a
    ``Path``; an H x W x 3 uint8 array (an image); an int (category index of b, p or c); a 1-D float
    vector (p or c probabilities, or the pose's z). A background given as a vector is ambiguous
    (b or z): use ``Factor(code=..., z=...)``.
    """
    if isinstance(value, Factor):
        return value.check(kind)
    if isinstance(value, str):
        text = value.strip()
        if text == "random":
            return Factor(label="random").check(kind)
        match = _SPEC.match(text)
        if match:
            number = int(match.group(2))
            if match.group(1) == "code":
                if kind not in CODE_OF:
                    raise MnmError(f"{kind}: {text!r}: the pose has no category code; use seed:N or an image")
                return Factor(code=number, label=text).check(kind)
            if kind not in HAS_Z:
                raise MnmError(f"{kind}: {text!r}: the {kind} has no z; use code:K or an image")
            return Factor(z=number, label=text).check(kind)
        if not text:
            raise MnmError(f"{kind}: empty factor; give an image path, random, code:K or seed:N")
        value = Path(text)
    if isinstance(value, os.PathLike):
        path = Path(value)
        if not path.exists():
            raise MnmError(
                f"{path}: reference image not found ({kind}: an image path, random, code:K or seed:N)"
            )
        box = boxes.lookup(path) if boxes is not None else None
        return Factor(image=path, box=box).check(kind)
    if isinstance(value, bool):
        raise MnmError(f"{kind}: cannot use {value!r} as a factor")
    if isinstance(value, (int, np.integer)):
        if kind not in CODE_OF:
            raise MnmError(f"{kind}: an integer is a category index and the pose has none; use 'seed:N'")
        return Factor(code=int(value)).check(kind)
    if isinstance(value, np.ndarray):
        if value.ndim == 3:
            return Factor(image=value).check(kind)
        if value.ndim == 1:
            if kind == "background":
                raise MnmError("background: a vector could be b or z; use Factor(code=b, z=z_bg)")
            field = "z" if kind == "pose" else "code"
            return Factor(**{field: value}).check(kind)
    raise MnmError(f"{kind}: cannot use a {type(value).__name__} as a factor")


def require_factors(given: dict[str, bool], mode: str, name=str) -> None:
    """Refuse a request that leaves a factor out (the CLI and the HTTP API; the Python API keeps its
    defaults): a forgotten factor must not quietly become random. ``random``, ``code:K`` and ``seed:N``
    are explicit; only feature mode leaves the shape out (S reads it from the pose image). ``given``
    says per factor whether a value came; ``name`` spells a factor as the caller's user wrote it."""
    missing = [k for k in FACTORS if not given.get(k) and not (k == "shape" and mode == "feature")]
    if missing:
        raise MnmError(
            f"missing {', '.join(name(k) for k in missing)}: give every factor an image, random, code:K or seed:N "
            "(feature mode alone leaves the shape out: it comes from the pose image)"
        )


def is_spec(text: str) -> bool:
    """Whether ``text`` is a code spec (``random``, ``code:K``, ``seed:N``) rather than an image path."""
    text = text.strip()
    return text == "random" or _SPEC.match(text) is not None


def split_specs(values) -> list[str]:
    """CLI factor lists: the option repeated and/or comma-separated (a path that exists is kept whole)."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for value in values:
        if "," in value and not Path(value).exists():
            out.extend(part.strip() for part in value.split(",") if part.strip())
        else:
            out.append(value)
    return out


def expand_specs(specs: list[str], option: str) -> list[str]:
    """A folder or a glob pattern given as one value becomes the images it names, in natural order:
    ``--texture refs/`` or ``--texture 'refs/*.png'``. Other specs pass through unchanged."""
    out: list[str] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = image_files(path)
            if not found:
                raise MnmError(f"{spec}: is a folder with no images ({', '.join(IMAGE_SUFFIXES)}); {option} takes "
                               "an image, a folder of images or a quoted pattern")
        elif any(ch in spec for ch in "*?[") and not path.exists():
            found = sorted((Path(p) for p in glob.glob(spec) if Path(p).is_file()), key=natural_key)
            if not found:
                raise MnmError(f"{spec}: no file matches the pattern ({option})")
        else:
            out.append(spec)
            continue
        out.extend(str(p) for p in found)
    return out


def parse_box(text: str, source: str = "--box") -> tuple[float, float, float, float]:
    """``x,y,w,h`` (commas or spaces) → four floats in pixels; checked against the image later."""
    parts = text.replace(",", " ").split()
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(np.isfinite(values)):
        raise MnmError(f"{source}: expected x,y,w,h in pixels, got {text!r}")
    return values  # type: ignore[return-value]


class BoxTable:
    """Object boxes per reference image, from ``--boxes FILE`` and a ``--box`` default.

    The file holds one ``PATH X Y W H`` per line (spaces or commas; the path may contain spaces,
    the last four fields are the box; ``#`` starts a comment). Relative paths are taken from the
    current folder, like the paths given on the command line. ``--box`` applies to every reference
    image the file does not list.
    """

    def __init__(self, boxes: dict[Path, tuple] | None = None, default: tuple | None = None):
        self.boxes = {_key(p): b for p, b in (boxes or {}).items()}
        self.default = default

    @classmethod
    def read(cls, path: str | os.PathLike | None, default: tuple | None = None) -> BoxTable:
        if path is None:
            return cls(default=default)
        path = Path(path)
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            raise MnmError(f"{path}: boxes file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise MnmError(f"{path}: cannot read the boxes file ({exc})") from None
        boxes = {}
        for number, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            match = _BOX_LINE.match(text)
            if not match:
                raise MnmError(f"{path}:{number}: expected PATH X Y W H, got {line.strip()!r}")
            boxes[Path(match.group(1))] = parse_box(match.group(2), source=f"{path}:{number}")
        return cls(boxes, default)

    def lookup(self, image: Path) -> tuple | None:
        return self.boxes.get(_key(image), self.default)


def _key(path: Path) -> Path:
    return Path(os.path.abspath(path))
