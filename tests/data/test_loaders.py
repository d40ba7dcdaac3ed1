"""mnm.training.datasets: each format loads the right records from real files, the two training
inputs have the hand-computed geometry, and every kind of bad box names its file and line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mnm.config import background_input_size
from mnm.errors import MnmError
from mnm.imaging import crop_resize, to_model_input, to_uint8
from mnm.training.datasets import detect_format, open_dataset

CUB_ITEMS = [
    ("001.Aaa/a1.png", (200, 150), (60, 40, 40, 30), 1, True),
    ("001.Aaa/a2.png", (160, 120), (10, 10, 50, 60), 1, False),
    ("002.Bbb/b1.png", (304, 152), (100, 40, 60, 50), 2, True),
]


def summary(ds):
    return [(r.path.name, r.box, r.label, r.line, (r.width, r.height)) for r in ds.records]


# --- formats --------------------------------------------------------------------------------

def test_cub_layout_splits_labels_and_sources(tmp_path, writers):
    root = writers.cub(tmp_path / "cub", CUB_ITEMS, classes=3)
    assert detect_format(root) == "cub"
    train = open_dataset(root)
    assert train.format == "cub" and train.num_classes == 3 and len(train) == 2
    assert summary(train) == [
        ("a1.png", (60.0, 40.0, 40.0, 30.0), 0, 1, (200, 150)),
        ("b1.png", (100.0, 40.0, 60.0, 50.0), 1, 3, (304, 152)),
    ]
    assert train.records[0].source == str(root / "bounding_boxes.txt")
    assert train.records[0].path == root / "images" / "001.Aaa" / "a1.png"
    assert summary(open_dataset(root, "test")) == [("a2.png", (10.0, 10.0, 50.0, 60.0), 0, 2, (160, 120))]
    assert len(open_dataset(root, "all")) == 3


def test_cub_without_split_or_labels_is_all_training_data(tmp_path, writers):
    root = writers.cub(tmp_path / "cub", CUB_ITEMS, split=False)
    (root / "image_class_labels.txt").unlink()
    ds = open_dataset(root)
    assert len(ds) == 3 and ds.num_classes == 0 and {r.label for r in ds.records} == {None}
    with pytest.raises(MnmError, match="defines no test split"):
        open_dataset(root, "test")


def test_stanford_dogs_voc_xml_largest_object_and_test_list(tmp_path, writers):
    root = writers.dogs(tmp_path / "dogs", [
        ("n02-beagle", "n02_1", (200, 160), [(10, 10, 40, 40), (50, 20, 190, 150)]),
        ("n02-beagle", "n02_2", (150, 150), [(5, 5, 100, 120)]),
        ("n01-akita", "n01_1", (180, 140), [(20, 30, 100, 120)]),
    ], test=["n02-beagle/n02_2.jpg"])
    assert detect_format(root) == "dogs"
    train = open_dataset(root)
    assert train.num_classes == 2
    xml = root / "Annotation" / "n02-beagle" / "n02_1"
    second_object = [i for i, t in enumerate(xml.read_text().splitlines(), 1) if "<object>" in t][1]
    assert summary(train) == [
        ("n01_1.jpg", (20.0, 30.0, 80.0, 90.0), 0, 8, (180, 140)),
        ("n02_1.jpg", (50.0, 20.0, 140.0, 130.0), 1, second_object, (200, 160)),
    ]
    assert train.records[1].source == str(xml)
    assert summary(open_dataset(root, "test")) == [("n02_2.jpg", (5.0, 5.0, 95.0, 115.0), 1, 8, (150, 150))]


def test_stanford_cars_devkit_mat(tmp_path, writers):
    root = writers.cars(
        tmp_path / "cars",
        train=[("00001.jpg", (120, 80), (10, 20, 60, 70), 3), ("00002.jpg", (120, 90), (5, 5, 100, 50), 1)],
        test=[("00001.jpg", (100, 100), (1, 2, 50, 60), 2)],
        class_names=["a", "b", "c", "d"],
    )
    assert detect_format(root) == "cars"
    train = open_dataset(root)
    assert train.num_classes == 4
    assert summary(train) == [
        ("00001.jpg", (10.0, 20.0, 50.0, 50.0), 2, 1, (120, 80)),
        ("00002.jpg", (5.0, 5.0, 95.0, 45.0), 0, 2, (120, 90)),
    ]
    assert train.records[0].source == str(root / "devkit" / "cars_train_annos.mat")
    test = open_dataset(root, "test")
    assert test.records[0].path == root / "cars_test" / "00001.jpg" and test.records[0].label == 1


def test_stanford_cars_unlabelled_test_annotations(tmp_path, writers):
    root = writers.cars(tmp_path / "cars", train=[("00001.jpg", (120, 80), (10, 20, 60, 70), 3)],
                        test=[("00001.jpg", (100, 100), (1, 2, 50, 60), None)], test_labels=False)
    assert open_dataset(root).num_classes == 3
    assert [r.label for r in open_dataset(root, "test").records] == [None]


def test_folder_csv_named_labels_and_largest_row(tmp_path, writers):
    root = writers.folder(tmp_path / "f", [
        ("a.png", (120, 90), (10, 20, 30, 40), "dog"),
        ("sub/b.png", (100, 100), (5, 5, 50, 50), "cat"),
    ])
    with open(root / "boxes.csv", "a") as f:
        f.write("a.png,20,10,80,60,dog\n")
    assert detect_format(root) == "folder"
    ds = open_dataset(root)
    assert ds.num_classes == 2
    assert sorted(summary(ds)) == [
        ("a.png", (20.0, 10.0, 80.0, 60.0), 1, 4, (120, 90)),
        ("b.png", (5.0, 5.0, 50.0, 50.0), 0, 3, (100, 100)),
    ]
    with pytest.raises(MnmError, match="defines no test split"):
        open_dataset(root, "test")


def test_folder_json_integer_labels_and_line_numbers(tmp_path, writers):
    root = writers.folder(tmp_path / "f", [
        ("x.png", (64, 64), (4, 4, 30, 30), 3),
        ("y.png", (64, 48), (10, 8, 20, 20), 0),
    ], kind="json")
    ds = open_dataset(root)
    assert ds.format == "folder" and ds.num_classes == 4
    assert summary(ds) == [
        ("x.png", (4.0, 4.0, 30.0, 30.0), 3, 2, (64, 64)),
        ("y.png", (10.0, 8.0, 20.0, 20.0), 0, 3, (64, 48)),
    ]


def test_synthetic_set_reads_as_cub_layout_with_its_ground_truth(tmp_path):
    from mnm.training.synthetic import render_dataset

    root = render_dataset(tmp_path / "syn", n=10, size=32, shapes=2, textures_per_shape=2, backgrounds=2,
                          correlation=0.5, seed=5, workers=1)
    truth = {t["file"]: t for t in map(json.loads, (root / "ground_truth.jsonl").read_text().splitlines())}
    ds = open_dataset(root, "all")
    assert ds.format == "cub" and ds.num_classes == 4 and len(ds) == 10
    for rec in ds.records:
        t = truth[rec.path.relative_to(root / "images").as_posix()]
        assert rec.label == t["c"] and rec.box == tuple(float(v) for v in t["box"])
    assert ds.sample(0, np.random.default_rng(0), 32)["background"].shape == (3, 31, 31)


def test_exif_orientation_gives_the_displayed_size(tmp_path):
    """load_image applies EXIF orientation, so the box is checked against the turned image."""
    root = tmp_path / "f"
    root.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: stored 200x100, shown 100x200
    Image.new("RGB", (200, 100), (30, 60, 200)).save(root / "p.jpg", exif=exif)
    (root / "boxes.csv").write_text("file,x,y,w,h\np.jpg,10,150,50,40\n")
    ds = open_dataset(root)
    assert (ds.records[0].width, ds.records[0].height) == (100, 200)
    assert ds.sample(0, np.random.default_rng(0), 32)["object"].shape == (3, 32, 32)


def test_unknown_folder_is_refused(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(MnmError, match="cannot tell the dataset format"):
        open_dataset(tmp_path)


# --- geometry of the two inputs -------------------------------------------------------------
# b1.png: 304x152, box (100, 40, 60, 50), left half red, right half green. At S=64 the full image
# is resized to 152x76 (short side 64*76/64 = 76, scale 0.5), then cropped to B = 63.

S, B = 64, 63


def draws(seed: int):
    """The documented draw order of sample(): crop x in [0, 152-63], crop y in [0, 76-63], flip coin."""
    rng = np.random.default_rng(seed)
    return int(rng.integers(0, 152 - B + 1)), int(rng.integers(0, 76 - B + 1)), bool(rng.random() < 0.5)


def seed_where(condition) -> int:
    return next(s for s in range(1000) if condition(*draws(s)))


@pytest.fixture
def b1(tmp_path, writers):
    ds = open_dataset(writers.cub(tmp_path / "cub", CUB_ITEMS), "all")
    assert ds.records[2].path.name == "b1.png"
    return ds


def close(pixel, colour) -> bool:
    return bool(np.abs(pixel.astype(int) - colour).max() <= 3)


@pytest.mark.parametrize("flip", [False, True])
def test_background_crop_box_and_flip(b1, writers, flip):
    seed = seed_where(lambda ox, oy, f: f == flip and 17 <= ox <= 50)  # box fully inside the crop
    ox, oy, _ = draws(seed)
    out = b1.sample(2, np.random.default_rng(seed), S)
    assert background_input_size(S) == B and out["background"].shape == (3, B, B)
    x0, y0, x1, y1 = 50 - ox, 20 - oy, 80 - ox, 45 - oy  # box (100, 40, 160, 90) at scale 0.5
    if flip:
        x0, x1 = B - x1, B - x0
    assert out["box"].dtype == np.float32 and out["box"].tolist() == [x0, y0, x1, y1]

    img = to_uint8(out["background"])
    red, green = writers.colours.red, writers.colours.green
    left, right = (green, red) if flip else (red, green)
    mid = (x0 + x1) // 2
    assert close(img[y0 + 1, x0 + 1], left) and close(img[y1 - 2, mid - 2], left)
    assert close(img[y0 + 1, x1 - 2], right) and close(img[y1 - 2, mid + 1], right)
    for y, x in [(y0 - 2, x0 + 3), (y1 + 1, x1 - 3), (y0 + 3, x0 - 2), (y0 + 3, x1 + 1)]:
        assert close(img[y, x], writers.colours.blue), (y, x)


def test_background_box_is_clipped_to_the_crop(b1):
    seed = seed_where(lambda ox, oy, f: not f and ox < 17)
    ox, oy, _ = draws(seed)
    box = b1.sample(2, np.random.default_rng(seed), S)["box"]
    assert box.tolist() == [50 - ox, 20 - oy, B, 45 - oy]  # x1 = 80 - ox > 63 is clipped


@pytest.mark.parametrize("flip", [False, True])
def test_object_crop_is_the_hand_computed_square_and_flips_with_the_background(b1, writers, flip):
    # box (100, 40, 60, 50): half side int(60 * 0.75) = 45 around centre (130, 65) -> (85, 20, 175, 110)
    seed = seed_where(lambda ox, oy, f: f == flip)
    out = b1.sample(2, np.random.default_rng(seed), S)
    img = np.asarray(Image.open(b1.records[2].path))
    expected = crop_resize(img, (85, 20, 175, 110), S)
    if flip:
        expected = expected[:, ::-1]
    np.testing.assert_array_equal(out["object"], to_model_input(np.ascontiguousarray(expected)))
    # In the 90x90 crop the object spans x 15..75 (red 15..45), y 20..70; scaled by 64/90.
    obj = to_uint8(out["object"])
    red_x, green_x = (44, 19) if flip else (19, 44)
    assert close(obj[32, red_x], writers.colours.red) and close(obj[32, green_x], writers.colours.green)
    assert close(obj[3, 3], writers.colours.blue) and close(obj[60, 60], writers.colours.blue)
    assert out["label"] == 1 and out["index"] == 2


def test_sampling_uses_only_the_given_generator(b1):
    np.random.seed(1)
    first = b1.sample(2, np.random.default_rng(7), S)
    np.random.seed(2)
    second = b1.sample(2, np.random.default_rng(7), S)
    for key in ("object", "background", "box"):
        np.testing.assert_array_equal(first[key], second[key])


def test_sample_batch_stacks_samples_in_order(b1):
    batch = b1.sample_batch([2, 0], np.random.default_rng(3), S)
    rng = np.random.default_rng(3)
    singles = [b1.sample(2, rng, S), b1.sample(0, rng, S)]
    assert batch["object"].shape == (2, 3, S, S) and batch["background"].shape == (2, 3, B, B)
    assert batch["box"].shape == (2, 4) and batch["label"].dtype == np.int64
    assert batch["label"].tolist() == [1, 0] and batch["index"].tolist() == [2, 0]
    for key in ("object", "background", "box"):
        np.testing.assert_array_equal(batch[key], np.stack([s[key] for s in singles]))


# --- bad boxes and missing files ------------------------------------------------------------

def _replace_line(path, n, text):
    lines = path.read_text().splitlines()
    if text is None:
        del lines[n - 1]
    else:
        lines[n - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("line, expected", [
    ("2 0.12 0.3 0.5 0.4", "looks like normalised 0-1 units; boxes must be in pixels"),
    ("2 -5.0 10.0 40.0 30.0", "starts at a negative coordinate"),
    ("2 150.0 10.0 40.0 30.0", "extends outside the 160x120 image"),
    ("2 10.0 10.0 0.0 30.0", "zero or negative width or height"),
    ("2 10.0 10.0 30.0", "expected a box x y w h of four finite numbers"),
])
def test_cub_bad_box_names_file_and_line(tmp_path, writers, line, expected):
    root = writers.cub(tmp_path / "cub", CUB_ITEMS)
    _replace_line(root / "bounding_boxes.txt", 2, line)
    with pytest.raises(MnmError) as err:
        open_dataset(root, "all")
    message = str(err.value)
    assert message.startswith(f"{root / 'bounding_boxes.txt'} line 2") and expected in message
    assert "\n" not in message


def test_cub_missing_box_and_missing_image(tmp_path, writers):
    root = writers.cub(tmp_path / "cub", CUB_ITEMS)
    _replace_line(root / "bounding_boxes.txt", 2, None)
    with pytest.raises(MnmError, match=r"images\.txt line 2: 001\.Aaa/a2\.png has no box"):
        open_dataset(root, "all")

    root = writers.cub(tmp_path / "cub2", CUB_ITEMS)
    (root / "images" / "001.Aaa" / "a2.png").unlink()
    with pytest.raises(MnmError, match=r"bounding_boxes\.txt line 2: image .*a2\.png not found"):
        open_dataset(root, "all")


def test_first_problem_is_raised_with_a_count_of_the_rest(tmp_path, writers):
    root = writers.cub(tmp_path / "cub", CUB_ITEMS)
    _replace_line(root / "bounding_boxes.txt", 1, "1 0.1 0.1 0.5 0.5")
    _replace_line(root / "bounding_boxes.txt", 3, "3 0.1 0.1 0.5 0.5")
    with pytest.raises(MnmError, match=r"line 1 \(a1\.png\): .*0-1 units.*\(and 1 more: run `mnm data check"):
        open_dataset(root)


def test_dogs_box_outside_image_names_the_object_line(tmp_path, writers):
    root = writers.dogs(tmp_path / "dogs", [("n01-akita", "n01_1", (180, 140), [(20, 30, 100, 120)])])
    xml = root / "Annotation" / "n01-akita" / "n01_1"
    xml.write_text(writers.voc_xml(180, 140, [(20, 30, 250, 120)]))
    with pytest.raises(MnmError, match=rf"^{xml} line 8 \(n01_1\.jpg\): .*outside the 180x140 image"):
        open_dataset(root)
    xml.unlink()
    with pytest.raises(MnmError, match=r"n01_1\.jpg: no annotation: expected Annotation/n01-akita/n01_1"):
        open_dataset(root)


def test_cars_zero_area_box_names_the_entry(tmp_path, writers):
    root = writers.cars(tmp_path / "cars", train=[
        ("00001.jpg", (120, 80), (10, 20, 60, 70), 1), ("00002.jpg", (120, 80), (30, 20, 30, 70), 1),
    ])
    with pytest.raises(MnmError, match=r"cars_train_annos\.mat entry 2 \(00002\.jpg\): .*zero or negative"):
        open_dataset(root)


def test_folder_bad_rows_name_file_and_line(tmp_path, writers):
    items = [("a.png", (120, 90), (10, 20, 30, 40), "dog"), ("b.png", (100, 100), (5, 5, 50, 50), "cat")]
    root = writers.folder(tmp_path / "csv", items)
    _replace_line(root / "boxes.csv", 3, "b.png,0.1,0.1,0.6,0.6,cat")
    with pytest.raises(MnmError, match=r"boxes\.csv line 3 \(b\.png\): .*0-1 units"):
        open_dataset(root)

    root = writers.folder(tmp_path / "json", items, kind="json")
    _replace_line(root / "boxes.json", 3, '  {"file": "b.png", "x": -3, "y": 5, "w": 50, "h": 50}')
    with pytest.raises(MnmError, match=r"boxes\.json line 3 \(b\.png\): .*negative"):
        open_dataset(root)

    root = writers.folder(tmp_path / "missing", items, labels=False)
    _replace_line(root / "boxes.csv", 3, None)
    with pytest.raises(MnmError, match=r"b\.png: no box: the image is not named in boxes\.csv"):
        open_dataset(root)
