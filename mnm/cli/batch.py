"""`mnm mix --batch PLAN --out DIR`: the options and the run of a plan (``mnm.runtime.batch``).

``mnm/cli/mix.py`` declares these options with the others and hands a plan to ``run_batch``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import typer

from mnm.errors import MnmError


def shard_option():
    return typer.Option(None, "--shard", metavar="I/N",
                        help="Run every N-th plan row, from row I+1 (0 <= I < N): N processes split a plan.")


def ray_option():
    return typer.Option(False, "--ray", help="Mix the plan on Ray Data (pip install 'mnm[ray]'): an actor pool.")


def address_option():
    return typer.Option(None, "--address", help="With --ray: the cluster to join (ray://..., auto) [default: "
                        "a local Ray instance on loopback].")


def workers_option():
    return typer.Option(2, "--workers", min=1, help="With --ray: actors, each with its own pipeline and one CPU.")


def index_option():
    return typer.Option(None, "--index", help="Write FILE (.parquet: Parquet, else CSV) listing every plan row's "
                        "output with its factors.")


def keep_going_option():
    return typer.Option(False, "--keep-going", help="Skip bad plan rows (and rows that fail) instead of stopping; "
                        "the index records them.")


def refuse_without_batch(shard: str | None, ray: bool, address: str | None, workers: int, index: Path | None,
                         keep_going: bool) -> None:
    given = {"--shard": shard is not None, "--ray": ray, "--address": address is not None, "--workers": workers != 2,
             "--index": index is not None, "--keep-going": keep_going}
    used = [name for name, on in given.items() if on]
    if used:
        raise MnmError(f"{', '.join(used)}: only with --batch PLAN")


def parse_shard(text: str | None) -> tuple[int, int]:
    if text is None:
        return (0, 1)
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise MnmError(f"--shard: expected I/N with 0 <= I < N (e.g. 0/4), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def run_batch(bundle: Path, plan_path: Path, out: str, *, mode: str, seed: int, stitch: str | None, fit: str,
              precision: str, backend: str, threads: int | None, max_batch: int, verbose: bool, boxes,
              boxes_path: Path | None, shard: str | None, ray: bool, address: str | None, workers: int,
              index: Path | None, keep_going: bool) -> None:
    """Check the whole plan, open the bundle, claim the output folder, mix, write the index."""
    from mnm.cli.pipeline import open_pipeline
    from mnm.progress import track
    from mnm.provenance import sha256_file
    from mnm.runtime.backends import check_name
    from mnm.runtime.batch import manifest, runner
    from mnm.runtime.batch.index import records, write_index
    from mnm.runtime.batch.mixing import Job
    from mnm.runtime.batch.plan import Plan, scan
    from mnm.runtime.batch.store import open_store
    from mnm.runtime.bundle import Bundle, check_precision_name

    shard_of = parse_shard(shard)
    if ray and shard_of != (0, 1):
        raise MnmError("--shard and --ray: Ray splits the plan itself; give one of them")
    if (address or workers != 2) and not ray:
        raise MnmError("--address and --workers go with --ray")
    check_precision_name(precision, "--precision")
    check_name(backend)
    plan = Plan(plan_path, mode, boxes, stitch)
    found = scan(plan, runner.SCAN_WINDOW, keep_going)
    if found.bad:
        typer.echo(f"{found.bad} bad plan row(s) skipped (--keep-going); the first: {found.first_bad}", err=True)
    store = open_store(out)
    if ray:
        opened = Bundle.open(bundle)
        opened.check_precision(precision)  # the workers open their pipelines later; refuse here, before any work
        pipe = None
    else:
        pipe = open_pipeline(bundle, backend, max_batch, threads, verbose, fit=fit, precision=precision)
        opened = pipe.bundle
    runner.check_codes(found, opened.config)
    manifest.claim(store, manifest.Manifest(
        bundle_sha256=sha256_file(opened.path / "manifest.json"), plan_sha256=found.sha256, mode=mode, seed=seed,
        precision=precision, fit=fit, stitch=stitch,
        boxes_sha256=None if boxes_path is None else sha256_file(boxes_path),
    ))
    job = Job(plan, seed, keep_going=keep_going, shard=shard_of)
    if ray:
        from mnm.runtime.batch.ray_data import mix_on_ray, ray_session

        options = {"backend": backend, "max_batch": max_batch, "fit": fit, "precision": precision,
                   "threads": threads or 1}
        windows = runner.merge_windows(found.windows, runner.ray_window(found.rows, workers))
        with ray_session(address, workers), track(total=found.rows, desc="mix", unit="row") as bar:
            start = time.perf_counter()  # Ray's start-up is not counted; each actor's pipeline opening is
            tally = mix_on_ray(job, windows, str(opened.path.absolute()), out, options, workers, bar.update)
            seconds = time.perf_counter() - start
    else:
        with track(total=found.rows, desc="mix", unit="row") as bar:
            start = time.perf_counter()
            tally = runner.run_here(pipe, job, found.windows, store, bar.update)
            seconds = time.perf_counter() - start
    if index is not None:
        write_index(index, records(plan, seed, opened.config, dict(tally.failed)))
    where = "" if shard_of == (0, 1) else f" (shard {shard_of[0]}/{shard_of[1]})"
    rate = tally.written / seconds if seconds > 0 else 0.0
    typer.echo(f"wrote {tally.written} images to {store}{where} in {seconds:.1f} s ({rate:.1f} images/s); "
               f"{tally.existed} already there, {len(tally.failed)} failed, "
               f"{found.bad} bad rows; cache hit rate {tally.hit_rate:.0%}")
    for _, message in tally.failed[:10]:
        typer.echo(f"failed: {message}", err=True)
    if index is not None:
        typer.echo(f"wrote the index {index}")
