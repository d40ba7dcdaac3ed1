"""Property-based fuzzing of every parser that takes user input: the image loader, boxes, factor
specs, the bundle manifest reader, and the CLI argument layer of ``mnm mix`` and ``mnm info``.

The property everywhere: a valid result, or ``MnmError`` with one line (exit 2 from the CLI) —
never another exception, a traceback, or exit 1 (the CLI's "unexpected error"). Example counts
are modest and derandomized, so a CI run is fast and repeatable.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mnm.cli import run
from mnm.codes import as_categorical
from mnm.errors import MnmError
from mnm.imaging import load_image, object_crop_box, validate_box
from mnm.provenance import sha256_file
from mnm.runtime.bundle import Bundle
from mnm.runtime.requests import FACTORS, BoxTable, parse_box, parse_factor, split_specs
from tests.hardening.conftest import TINY

FUZZ = settings(derandomize=True, max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
CLI_FUZZ = settings(FUZZ, max_examples=40)
FUZZ_MAX_PIXELS = 1_000_000
"""A mutated header can claim any size: the fuzzed loader decodes at most this many pixels."""


def one_line(exc: MnmError) -> str:
    message = str(exc)
    assert len(message.splitlines()) == 1, message
    return message


def single_line(text: str) -> bool:
    """User text without line breaks (the CLI shows those escaped; the API keeps the user's text as is)."""
    return len(text.splitlines()) <= 1


@pytest.fixture(scope="module")
def scratch():
    """A folder the examples write into (hypothesis runs many examples per test function)."""
    folder = Path(tempfile.mkdtemp(prefix="mnm-fuzz-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


VALID = {"png": _encoded("PNG"), "jpg": _encoded("JPEG"), "gif": _encoded("GIF")}


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    """A valid PNG, JPEG or GIF with some bytes flipped, a piece cut out or junk inserted, or truncated."""
    suffix = draw(st.sampled_from(sorted(VALID)))
    data = bytearray(VALID[suffix])
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            data[position] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del data[position : position + draw(st.integers(1, 16))]
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        if not data:
            break
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return suffix, bytes(data)


def _load_property(path: Path) -> None:
    try:
        image = load_image(path, max_pixels=FUZZ_MAX_PIXELS)
    except MnmError as exc:
        assert str(path) in one_line(exc)
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.size > 0


@FUZZ
@given(data=st.binary(max_size=512), suffix=st.sampled_from(["png", "jpg", "gif", "webp", "bin"]))
def test_loader_random_bytes(scratch, data, suffix):
    path = scratch / f"random.{suffix}"
    path.write_bytes(data)
    _load_property(path)


@FUZZ
@given(sample=mutated())
def test_loader_mutated_images(scratch, sample):
    suffix, data = sample
    path = scratch / f"mutated.{suffix}"
    path.write_bytes(data)
    _load_property(path)


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6))


@FUZZ
@given(box=st.lists(numbers, min_size=0, max_size=6), width=st.integers(1, 5000), height=st.integers(1, 5000))
def test_boxes_are_validated_or_refused(box, width, height):
    try:
        x0, y0, x1, y1 = object_crop_box(box, width, height, source="fuzz")
    except MnmError as exc:
        assert one_line(exc).startswith("fuzz: ")
        return
    x, y, w, h = validate_box(box, width, height)
    assert w > 0 and h > 0 and x >= 0 and y >= 0
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height  # a non-empty crop inside the image


box_text = st.one_of(
    st.text(max_size=30).filter(single_line),
    st.lists(st.one_of(numbers.map(str), st.text(alphabet="0123456789.-e+,", max_size=6)), max_size=6).map(
        lambda parts: ",".join(parts)),
)


@FUZZ
@given(text=box_text)
def test_box_text_parses_to_four_finite_numbers_or_one_line(text):
    try:
        box = parse_box(text)
    except MnmError as exc:
        assert one_line(exc).startswith("--box: ")
        return
    assert len(box) == 4 and all(np.isfinite(v) for v in box)


@FUZZ
@given(lines=st.lists(st.one_of(st.text(max_size=40), box_text.map(lambda b: f"a.png {b}")), max_size=5))
def test_boxes_file_reads_or_names_its_line(scratch, lines):
    path = scratch / "boxes.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        table = BoxTable.read(path)
    except MnmError as exc:
        assert one_line(exc).startswith(f"{path}:")
        return
    assert all(len(b) == 4 and all(np.isfinite(b)) for b in table.boxes.values())


spec_text = st.one_of(
    st.sampled_from(["random", "", " ", "code:", "seed:", "code:x", "code:1.5", "seed:-1", "code:-1"]),
    st.builds(lambda kind, n: f"{kind}:{n}", st.sampled_from(["code", "seed", "Code", "SEED", "z"]),
              st.integers(-10**20, 10**20)),
    st.text(max_size=20),
).filter(single_line)


@FUZZ
@given(text=spec_text, kind=st.sampled_from(FACTORS), seed=st.integers(0, 2**32))
def test_factor_specs_resolve_or_refuse_in_one_line(text, kind, seed):
    try:
        factor = parse_factor(text, kind).resolve(kind, TINY, np.random.default_rng(seed))
    except MnmError as exc:
        one_line(exc)
        return
    assert not factor.is_image or Path(factor.image).exists()
    if factor.code is not None:
        assert factor.code.shape == (TINY.code_dims()[{"background": "b", "shape": "p", "texture": "c"}[kind]],)
    if factor.z is not None:
        assert factor.z.shape == (TINY.z_dim,) and np.isfinite(factor.z).all()
    assert split_specs([text]) in ([], [text], [p.strip() for p in text.split(",") if p.strip()])


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # 1e300 -> inf -> refused
@FUZZ
@given(value=st.one_of(st.integers(-5, 10), st.lists(numbers, max_size=6)), n=st.integers(1, 6))
def test_categorical_codes(value, n):
    try:
        vec = as_categorical(value, n)
    except MnmError as exc:
        one_line(exc)
        return
    assert vec.shape == (n,) and vec.min() >= 0 and abs(vec.sum() - 1) <= 1e-3


# ---------------------------------------------------------------- the manifest reader


@pytest.fixture(scope="module")
def small_bundle(tiny_bundle, scratch) -> tuple[Path, dict]:
    """The tiny bundle's manifest over small stand-in files (the reader hashes files, never parses them)."""
    folder = scratch / "small-bundle"
    folder.mkdir()
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    for name, entry in manifest["graphs"].items():
        (folder / entry["file"]).write_bytes(name.encode())
        entry["sha256"] = sha256_file(folder / entry["file"])
    return folder, manifest


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(value, prefix=()):
    """Every (path of keys) into a JSON document."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


@st.composite
def mutated_manifest(draw, manifest: dict) -> dict:
    """The manifest with a few values replaced by random JSON, or deleted."""
    document = json.loads(json.dumps(manifest))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(document) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return document


def _open_property(folder: Path) -> None:
    try:
        bundle = Bundle.open(folder)
    except MnmError as exc:
        one_line(exc)
        return
    assert bundle.config.image_size >= 1 and set(bundle.graphs) >= {"enc_z", "g_child"}


@FUZZ
@given(data=st.data())
def test_manifest_reader_mutated_json(small_bundle, data):
    folder, manifest = small_bundle
    document = data.draw(mutated_manifest(manifest))
    (folder / "manifest.json").write_text(json.dumps(document))
    _open_property(folder)
    code, _, err = cli(["info", str(folder)])  # the report reads every field the reader lets through
    assert code in (0, 2) and "Traceback" not in err and "error: unexpected" not in err, err


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_manifest_reader_random_text(small_bundle, text):
    folder, _ = small_bundle
    (folder / "manifest.json").write_text(text, encoding="utf-8", errors="surrogateescape")
    _open_property(folder)


# ---------------------------------------------------------------- the CLI argument layer


def cli(argv: list[str]) -> tuple[int, str, str]:
    """The real CLI entry point in this process (the subprocess tables cover the process boundary)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def cli_inputs(tiny_bundle, corpus, scratch) -> dict:
    folder = scratch / "cli"
    folder.mkdir()
    plan = folder / "plan.csv"
    plan.write_text("background,pose,shape,texture\nrandom,seed:1,code:1,code:0\n")
    return {"bundle": str(tiny_bundle), "out": str(folder / "out"), "plan": str(plan),
            "images": [str(corpus.photos[0]), str(corpus.truncated_png), str(corpus.missing_png), str(corpus.huge_png),
                       str(corpus.valid["palette"][0])],
            "bundles": [str(tiny_bundle), str(corpus.bundle_future), str(corpus.bundle_as_file),
                        str(corpus.bundle_missing)]}


MIX_OPTIONS = ["--background", "--pose", "--shape", "--texture", "--mode", "--backend", "--stitch", "--box", "--boxes",
               "--seed", "--batch", "--max-batch", "--threads", "--out", "--json", "--debug-nope"]


@st.composite
def mix_argv(draw, inputs: dict) -> list[str]:
    values = st.one_of(
        st.sampled_from(inputs["images"] + ["random", "code:0", "code:9", "seed:3", "seed:-2", "code:1,code:2",
                                            "code", "feature", "auto", "ort-cpu", "tensorrt", "background",
                                            "foreground", "0,0,20,20", "0.1,0.1,0.5,0.5", "-1", "0", "2", "1e9",
                                            inputs["plan"], inputs["bundle"]]),
        st.text(max_size=10),
        st.integers(-3, 4).map(str),
    )
    argv = ["mix", draw(st.sampled_from(inputs["bundles"] + ["--out"]))]
    for _ in range(draw(st.integers(0, 5))):
        option = draw(st.sampled_from(MIX_OPTIONS))
        argv.append(option)
        if option == "--out":
            argv.append(draw(st.sampled_from([inputs["out"] + ".png", inputs["out"], inputs["out"] + ".txt"])))
        elif draw(st.integers(0, 9)):
            argv.append(draw(values))
    if draw(st.booleans()):
        argv += ["--out", inputs["out"] + ".png"]
    return argv


def _cli_property(argv: list[str], out_folder: Path) -> None:
    code, out, err = cli(argv)
    assert not [p.name for p in out_folder.iterdir() if p.name.startswith(".mnm-tmp-")]  # nothing half-written
    assert "Traceback" not in err + out and "error: unexpected" not in err, (argv, err)
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        usage = "Usage:" in err or "Error" in err  # click's own usage errors (unknown option, missing value)
        assert len(errors) == 1 or (not errors and usage), (argv, err)


@CLI_FUZZ
@given(data=st.data())
def test_mix_random_argument_lists(cli_inputs, data):
    _cli_property(data.draw(mix_argv(cli_inputs)), Path(cli_inputs["out"]).parent)


@CLI_FUZZ
@given(data=st.data())
def test_info_random_argument_lists(cli_inputs, data):
    words = st.one_of(st.sampled_from(cli_inputs["bundles"] + ["--json", "--help", "--debug", "-x", ""]),
                      st.text(max_size=10))
    argv = ["info", *data.draw(st.lists(words, max_size=3))]
    _cli_property(argv, Path(cli_inputs["out"]).parent)
