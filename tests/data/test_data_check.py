"""check_dataset and `mnm data check`: counts and format of a good folder; every problem of a bad one,
each naming its file and line, collected rather than stopping at the first."""

from __future__ import annotations

import json

from mnm.training.datasets import check_dataset
from tests.util import run_cli

ITEMS = [
    ("001.Aaa/a1.png", (200, 150), (60, 40, 40, 30), 1, True),
    ("001.Aaa/a2.png", (160, 120), (10, 10, 50, 60), 1, False),
    ("002.Bbb/b1.png", (304, 152), (100, 40, 60, 50), 2, True),
]


def bad_cub(root, writers):
    """Four problems: a 0-1 box (line 1), a missing image (line 2), a truncated image, an unknown id."""
    writers.cub(root, ITEMS, classes=2)
    boxes = root / "bounding_boxes.txt"
    lines = boxes.read_text().splitlines()
    lines[0] = "1 0.2 0.2 0.5 0.5"
    boxes.write_text("\n".join(lines + ["9 1.0 1.0 5.0 5.0"]) + "\n")
    (root / "images" / "001.Aaa" / "a2.png").unlink()
    b1 = root / "images" / "002.Bbb" / "b1.png"
    b1.write_bytes(b1.read_bytes()[:200])
    return root


def test_good_folder_counts(tmp_path, writers):
    report = check_dataset(writers.cub(tmp_path / "cub", ITEMS, classes=2))
    assert report.ok and report.problems == []
    assert (report.format, report.images, report.usable, report.classes, report.train, report.test) == (
        "cub", 3, 3, 2, 2, 1)


def test_every_problem_is_collected_with_file_and_line(tmp_path, writers):
    root = bad_cub(tmp_path / "cub", writers)
    report = check_dataset(root)
    assert not report.ok
    boxes = str(root / "bounding_boxes.txt")
    where = sorted((p.file, p.line) for p in report.problems)
    assert where == sorted([(boxes, 1), (boxes, 2), (boxes, 4), (str(root / "images/002.Bbb/b1.png"), None)])
    text = {p.line: p.message for p in report.problems}
    assert text[1].startswith(f"{boxes} line 1 (a1.png): ") and "0-1 units" in text[1]
    assert text[2].startswith(f"{boxes} line 2: image ") and text[2].endswith("a2.png not found")
    assert text[4] == f"{boxes} line 4: image id 9 is not listed in images.txt"
    assert "corrupt or truncated" in text[None]
    assert (report.images, report.usable, report.train, report.test) == (3, 0, 2, 1)

    headers_only = check_dataset(root, decode=False)
    assert len(headers_only.problems) == 3 and headers_only.usable == 1


def test_folder_that_is_no_dataset(tmp_path):
    report = check_dataset(tmp_path)
    assert report.format is None and not report.ok
    assert "cannot tell the dataset format" in report.problems[0].message


def test_cli_good_folder_exits_0(tmp_path, writers):
    root = writers.cub(tmp_path / "cub", ITEMS, classes=2)
    result = run_cli("data", "check", str(root), block_torch=True)
    assert result.returncode == 0, result.stderr
    for expected in ("format   cub", "images   3 annotated, 3 usable", "classes  2",
                     "split    2 train, 1 test", "problems 0"):
        assert expected in result.stdout


def test_cli_bad_folder_lists_every_problem_and_exits_2(tmp_path, writers):
    root = bad_cub(tmp_path / "cub", writers)
    result = run_cli("data", "check", str(root), block_torch=True)
    assert result.returncode == 2, result.stderr
    assert "problems 4" in result.stdout
    for problem in check_dataset(root).problems:
        assert f"  {problem.message}\n" in result.stdout

    result = run_cli("data", "check", str(root), "--json", "--no-decode", block_torch=True)
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["format"] == "cub" and report["ok"] is False and len(report["problems"]) == 3
    assert {(p["file"].rsplit("/", 1)[-1], p["line"]) for p in report["problems"]} == {
        ("bounding_boxes.txt", 1), ("bounding_boxes.txt", 2), ("bounding_boxes.txt", 4)}
