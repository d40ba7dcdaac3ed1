"""Plans: rows run into a folder with a manifest and resume; every row is checked before any work
(a bad row is named, or recorded in the index with ``--keep-going``); the index in CSV and Parquet."""

from __future__ import annotations

import csv
import importlib.util
import json

import numpy as np
import pytest

from mnm.errors import MnmError
from mnm.imaging import load_image
from mnm.runtime.batch.plan import Plan, scan
from mnm.runtime.pipeline import Pipeline
from tests.batch.conftest import mix_cli, write_plan


def test_a_plan_runs_into_a_folder_and_a_rerun_skips_finished_files(tiny_bundle, refs, tmp_path):
    plan = write_plan(tmp_path / "plan.csv", [
        (refs[0], refs[1], "code:0", refs[2], "first.png"),
        ("seed:3", "random", "random", "random", ""),
        ("code:1", "seed:2", refs[3], refs[4], "sub/third.jpg"),
    ])
    folder = tmp_path / "out"
    result = mix_cli(tiny_bundle, "--batch", plan, "--out", folder, "--max-batch", "2")
    assert result.returncode == 0, result.stderr
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.*")) == [
        "00002.png", "first.png", "mnm-batch.json", "sub/third.jpg"]
    recorded = json.loads((folder / "mnm-batch.json").read_text())
    assert {k: recorded[k] for k in ("mode", "seed", "precision", "fit")} == {
        "mode": "code", "seed": 0, "precision": "auto", "fit": "crop"}
    np.testing.assert_array_equal(load_image(folder / "first.png"),
                                  Pipeline(tiny_bundle).mix(refs[0], refs[1], "code:0", refs[2]))
    random_row = load_image(folder / "00002.png")

    stamps = {p.name: p.stat().st_mtime_ns for p in folder.rglob("*.*")}
    (folder / "00002.png").unlink()
    again = mix_cli(tiny_bundle, "--batch", plan, "--out", folder)
    assert again.returncode == 0, again.stderr
    assert "wrote 1 images" in again.stdout and "2 already there" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in folder.rglob("*.*") if p.name != "00002.png"} == {
        k: v for k, v in stamps.items() if k != "00002.png"}
    # a row's random codes depend on (seed, row), not on which rows ran before it
    np.testing.assert_array_equal(load_image(folder / "00002.png"), random_row)


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (("random", "code:1", "random", "random"), ":3: pose: 'code:1': the pose has no category code"),
        (("random", "random", "random", "missing.png"), ":3: texture: missing.png: reference image not found"),
        (("random", "random", "", "random"), ":3: shape: empty cell; every factor is given explicitly"),
        (("random", "random", "random", "kode:2"), ":3: texture: kode:2: reference image not found"),
        (("random", "random", "code:9", "random"), ":3: shape: code:9 is out of range"),
    ],
)
def test_a_bad_row_is_refused_before_any_work_naming_it(tiny_bundle, refs, tmp_path, cells, message):
    plan = write_plan(tmp_path / "plan.csv", [(refs[0], refs[1], "code:0", refs[2], ""), (*cells, "")])
    result = mix_cli(tiny_bundle, "--batch", plan, "--out", tmp_path / "out")
    assert result.returncode == 2 and result.stderr.count("error:") == 1, result.stderr
    assert f"error: {plan}{message}" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written, not even the manifest


def test_keep_going_records_bad_rows_in_the_index(tiny_bundle, refs, tmp_path):
    plan = write_plan(tmp_path / "plan.csv", [
        ("random", "random", "code:1", "missing.png", ""),
        (refs[0], "seed:1", "code:1", "code:3", "ok.png"),
        ("random", "code:1", "random", "random", ""),
        ("seed:5", "random", "random", "random", ""),
    ])
    index = tmp_path / "index.csv"
    result = mix_cli(tiny_bundle, "--batch", plan, "--out", tmp_path / "out", "--keep-going", "--index", index)
    assert result.returncode == 0, result.stderr
    assert "2 bad plan row(s) skipped (--keep-going)" in result.stderr
    assert "wrote 2 images" in result.stdout and "2 bad rows" in result.stdout
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["00004.png", "ok.png"]
    rows = list(csv.DictReader(index.open()))
    assert [(r["row"], r["out"], r["status"]) for r in rows] == [
        ("1", "00001.png", "bad"), ("2", "ok.png", "ok"), ("3", "00003.png", "bad"), ("4", "00004.png", "ok")]
    assert "missing.png: reference image not found" in rows[0]["error"] and f"{plan}:2:" in rows[0]["error"]
    assert "no category code" in rows[2]["error"]
    # code:K as given, random categories as drawn, nothing where an image gives it
    assert (rows[1]["b"], rows[1]["p"], rows[1]["c"]) == ("", "1", "3")
    assert all(rows[3][k].isdigit() for k in ("b", "p", "c"))


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed (mnm[ray])")
def test_the_parquet_index_holds_what_the_csv_index_does(tiny_bundle, refs, tmp_path):
    import pyarrow.parquet as pq

    plan = write_plan(tmp_path / "plan.csv", [(refs[0], "seed:1", "random", "code:2", ""),
                                              ("random", refs[1], "code:0", refs[2], "b.png")])
    for name in ("index.csv", "index.parquet"):
        result = mix_cli(tiny_bundle, "--batch", plan, "--out", tmp_path / "out", "--index", tmp_path / name)
        assert result.returncode == 0, result.stderr
    table = pq.read_table(tmp_path / "index.parquet").to_pylist()
    rows = list(csv.DictReader((tmp_path / "index.csv").open()))
    assert [{k: "" if v is None else str(v) for k, v in r.items()} for r in table] == rows
    assert table[0]["b"] is None and table[1]["p"] == 0


def test_plan_columns_and_outputs_are_checked(tmp_path):
    def refused(text: str, message: str, mode: str = "code") -> None:
        (tmp_path / "p.csv").write_text(text)
        with pytest.raises(MnmError, match=message):
            scan(Plan(tmp_path / "p.csv", mode), 16, keep_going=False)

    refused("background,pose,shape,texture,colour\nrandom,random,random,random,red\n", "unknown plan column")
    refused("background,texture\nrandom,random\n", "missing pose, shape")
    refused("background,pose,texture\nrandom,random,random\n", "missing shape")
    refused("background,pose,shape,texture,out\nrandom,seed:1,random,random,a.png\nrandom,seed:1,random,random,a.png\n",
            r"p\.csv:3: out 'a\.png' repeats line 2")
    refused("background,pose,shape,texture,out\nrandom,random,random,random,../a.png\n", "inside the output folder")
    refused("background,pose,shape,texture,out\nrandom,random,random,random,a.txt\n", "needs an image extension")
    refused("background,pose,shape,texture\nrandom,random,random\n", r"p\.csv:2: 3 cells for 4 columns")
    refused('background,pose,shape,texture\n"random,random,random,random\n', r"p\.csv:2: not a CSV record")
    refused("background,pose,shape,texture\n\n", "the plan has no rows")
    # feature mode: the shape column may be left out, and so may a shape cell
    (tmp_path / "f.csv").write_text(f"background,pose,texture\nrandom,{tmp_path / 'f.csv'},random\n")
    assert scan(Plan(tmp_path / "f.csv", "feature"), 16, keep_going=False).rows == 1


def test_bad_options_are_one_line(tiny_bundle, tmp_path):
    plan = write_plan(tmp_path / "plan.csv", [("random", "random", "random", "random", "")])
    for args, message in ((["--shard", "2/2"], "--shard: expected I/N with 0 <= I < N"),
                          (["--shard", "0/2", "--ray"], "--shard and --ray"),
                          (["--workers", "3"], "--address and --workers go with --ray"),
                          (["--ray", "--backend", "gpu-please"], "unknown backend 'gpu-please'"),
                          (["--ray", "--precision", "int8"], "the bundle has no INT8 graphs")):
        result = mix_cli(tiny_bundle, "--batch", plan, "--out", tmp_path / "out", *args)
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert not (tmp_path / "out").exists()  # refused before Ray starts and before the folder is claimed
    every_factor = [arg for kind in ("background", "pose", "shape", "texture") for arg in (f"--{kind}", "random")]
    result = mix_cli(tiny_bundle, *every_factor, "--shard", "0/2", "--out", tmp_path / "one.png")
    assert result.returncode == 2 and "--shard: only with --batch PLAN" in result.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.png").write_bytes(b"x")
    result = mix_cli(tiny_bundle, "--batch", plan, "--out", tmp_path / "full")
    assert result.returncode == 2 and "has files but no mnm-batch.json" in result.stderr


def test_a_feature_mode_plan_may_leave_the_shape_out(tiny_bundle, refs, tmp_path):
    plan = write_plan(tmp_path / "plan.csv", [(refs[0], refs[1], refs[2], "a.png"), ("seed:2", refs[3], "random", "")],
                      header="background,pose,texture,out")
    result = mix_cli(tiny_bundle, "--batch", plan, "--out", tmp_path / "out", "--mode", "feature", "--seed", "4")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(load_image(tmp_path / "out" / "a.png"),
                                  Pipeline(tiny_bundle).mix(refs[0], refs[1], None, refs[2], mode="feature"))
    again = mix_cli(tiny_bundle, "--batch", plan, "--out", tmp_path / "out", "--mode", "code")
    assert again.returncode == 2 and "missing shape" in again.stderr  # code mode needs every factor
