"""``--index FILE``: one line per plan row, for the users of the data set a batch makes.

Columns: ``row``, ``line`` (in the plan), ``out`` (the file in the output folder), the four cells
as written, ``b``/``p``/``c`` (the category each code factor used — a ``random`` one as drawn for
that row — empty where a reference image gives it) and ``status``: ``ok``, ``bad`` (refused at the
scan, under ``--keep-going``) or ``failed`` (failed while mixing, under ``--keep-going``), with
``error``. The index describes the whole plan whichever rows a run made, so one process, every
``--shard`` and Ray write the same bytes. ``.parquet`` gives Parquet (pyarrow), anything else CSV.
It is written in batches of rows (streamed) and renamed into place when complete.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator

from mnm.atomic import atomic_path
from mnm.config import ModelConfig
from mnm.errors import MnmError
from mnm.runtime.batch.draws import draw
from mnm.runtime.batch.plan import Plan
from mnm.runtime.requests import FACTORS

COLUMNS = ("row", "line", "out", *FACTORS, "b", "p", "c", "status", "error")
_CODES = (("b", "background"), ("p", "shape"), ("c", "texture"))
_BATCH = 4096


def records(plan: Plan, seed: int, config: ModelConfig, failed: dict[int, str]) -> Iterator[dict]:
    """The index rows in plan order; ``failed`` maps a line to its error while mixing."""
    for _, row in plan.rows():
        record = {"row": row.number, "line": row.line, "out": row.out, **row.cells,
                  "b": None, "p": None, "c": None, "status": "ok", "error": ""}
        try:
            mix = draw(plan.check(row), seed, row.line, config)
        except MnmError as exc:
            record.update(status="bad", error=str(exc))
            yield record
            continue
        for column, kind in _CODES:
            factor = getattr(mix, kind)
            if factor is not None and factor.code is not None:
                record[column] = factor.code
        if row.line in failed:
            record.update(status="failed", error=failed[row.line])
        yield record


def write_index(path: str | os.PathLike, rows: Iterator[dict]) -> None:
    if str(path).lower().endswith(".parquet"):
        _write_parquet(path, rows)
    else:
        _write_csv(path, rows)


def _write_csv(path, rows: Iterator[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _write_parquet(path, rows: Iterator[dict]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MnmError(f"{path}: a Parquet index needs pyarrow: pip install 'mnm[ray]' ({exc})") from None
    schema = pa.schema([(c, pa.int64() if c in ("row", "line", "b", "p", "c") else pa.string()) for c in COLUMNS])
    with atomic_path(path) as tmp, pq.ParquetWriter(str(tmp), schema) as writer:
        batch: list[dict] = []
        for row in rows:
            batch.append(row)
            if len(batch) == _BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema))
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema))
