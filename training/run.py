"""A training run: what one invocation asks for (``TrainSpec``) and the run folder it writes.

Layout (``--out runs`` makes ``runs/<NNNNN>-<name>/``, numbered like StyleGAN's run folders, so
repeated runs never overwrite each other)::

    options.json           everything needed to continue the run (rewritten atomically on resume)
    stats.jsonl            one JSON record per logging interval
    samples/<step>.png     a sample grid per snapshot
    checkpoints/<step>/    mnm.checkpoint folders; the last K are kept
    latest                 names the newest complete checkpoint; written after it exists

The order "checkpoint folder renamed into place, then ``latest``, then old folders removed"
means a process killed at any moment leaves ``latest`` naming a complete checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import mnm
from mnm.atomic import TMP_PREFIX, write_text
from mnm.errors import MnmError
from mnm.jsonfile import read_json_object
from mnm.provenance import utc_now

RUN_NUMBER = re.compile(r"^(\d{5})-")
CHECKPOINT_NAME = re.compile(r"^\d{8}$")
LATEST = "latest"
CHECKPOINT_FILES = ("tensors.safetensors", "meta.json")


RUN_FORMAT = "mnm-run"
STAGES = ("code", "feature")
# Schedule defaults for a new run; a resumed run keeps its own unless told otherwise.
DEFAULTS = {"batch": 12, "seed": 0, "split": "train", "keep": 3, "snapshot_every": 1000, "log_every": 10}
# What fixes a run's results: a resume may repeat these but not change them.
FIXED_ON_RESUME = ("batch", "seed", "split", "preset", "config_file", "overrides", "option_overrides")


@dataclass
class TrainSpec:
    """One invocation of ``mnm train code|feature``: JSON-able, so the launcher can hand it on.

    ``None`` means "not given": for a new run the default applies, for a resumed run the value
    stored in its options.json.
    """

    stage: str
    data: str | None = None
    out: str = "runs"
    name: str | None = None
    resume: str | None = None
    source: str | None = None  # feature stage: the code-mode run or checkpoint (--from)
    preset: str | None = None
    config_file: str | None = None
    overrides: list[str] = field(default_factory=list)
    option_overrides: dict = field(default_factory=dict)  # TrainOptions fields set on the command line
    steps: int | None = None
    kimg: float | None = None
    batch: int | None = None
    seed: int | None = None
    split: str | None = None
    keep: int | None = None
    snapshot_every: int | None = None
    log_every: int | None = None
    threads: int | None = None
    device: str = "auto"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainSpec:
        return cls(**data)



def new_run_dir(out: str | Path, name: str) -> Path:
    """Create ``out/<NNNNN>-<name>`` with the next free number (safe against a concurrent launch)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MnmError(f"{out}: --out must be a folder for run folders, not a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
        taken = [int(m.group(1)) for p in out.iterdir() if (m := RUN_NUMBER.match(p.name))]
        number = max(taken, default=-1) + 1
        while True:
            path = out / f"{number:05d}-{name}"
            try:
                path.mkdir()
                return path
            except FileExistsError:
                number += 1
    except OSError as exc:
        raise MnmError(f"{out}: cannot create the run folder ({exc.strerror or exc})") from None


def is_checkpoint(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in CHECKPOINT_FILES)


def find_checkpoint(path: str | Path) -> Path:
    """A run folder (follows ``latest``) or a checkpoint folder → the checkpoint folder."""
    path = Path(path)
    if not path.exists():
        raise MnmError(f"{path}: no such run or checkpoint folder")
    if is_checkpoint(path):
        return path
    if path.is_dir() and (path / "checkpoints").is_dir():
        found = RunFolder(path).latest_checkpoint()
        if found is None:
            raise MnmError(f"{path}: this run folder holds no complete checkpoint yet")
        return found
    raise MnmError(
        f"{path}: not a run folder (options.json, checkpoints/, latest) nor a checkpoint folder "
        "(tensors.safetensors + meta.json)"
    )


class RunFolder:
    """Reads and writes one run folder; only the process of rank 0 writes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.samples = self.path / "samples"
        self.stats_path = self.path / "stats.jsonl"
        self.options_path = self.path / "options.json"

    @classmethod
    def of_checkpoint(cls, checkpoint: Path) -> RunFolder:
        """The run folder that holds ``checkpoint`` (``<run>/checkpoints/<step>``)."""
        checkpoint = Path(checkpoint)
        run = checkpoint.parent.parent
        if checkpoint.parent.name != "checkpoints" or not (run / "options.json").is_file():
            raise MnmError(f"{checkpoint}: to resume, give a run folder or a checkpoint inside one")
        return cls(run)

    # options ---------------------------------------------------------------------------------
    def write_options(self, options: dict) -> None:
        write_text(self.options_path, json.dumps(options, indent=2, sort_keys=True) + "\n")

    def read_options(self) -> dict:
        return read_json_object(self.options_path, "run options",
                                missing=f"missing; is {self.path} a run folder?")

    # stats -----------------------------------------------------------------------------------
    def append_stats(self, record: dict) -> None:
        """Append one JSON line and flush it.

        The one file not replaced atomically: rewriting a growing log every interval costs
        quadratic time. A kill can tear only the last line, which ``read_stats`` skips and
        ``truncate_stats`` (run on resume) removes.
        """
        with open(self.stats_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True, allow_nan=True) + "\n")

    def read_stats(self) -> list[dict]:
        if not self.stats_path.is_file():
            return []
        records = []
        for line in self.stats_path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def truncate_stats(self, step: int) -> None:
        """Keep the records up to ``step`` (the checkpoint being resumed), atomically."""
        kept = [r for r in self.read_stats() if isinstance(r, dict) and r.get("step", math.inf) <= step]
        write_text(self.stats_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))

    # samples ---------------------------------------------------------------------------------
    def save_sample(self, step: int, image) -> Path:
        from mnm.imaging import save_image

        path = self.samples / f"{step:08d}.png"
        save_image(path, image)
        return path

    # checkpoints -----------------------------------------------------------------------------
    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"{step:08d}"

    def save_checkpoint(self, step: int, tensors: dict, meta: dict, keep: int) -> Path:
        """Write ``checkpoints/<step>``, point ``latest`` at it, then drop all but the last ``keep``."""
        from mnm.checkpoint import save_checkpoint

        path = self.checkpoint_path(step)
        save_checkpoint(path, tensors, meta)
        self.point_latest(path)
        self.rotate(keep, protect=path)
        return path

    def point_latest(self, checkpoint: Path) -> None:
        write_text(self.path / LATEST, f"checkpoints/{checkpoint.name}\n")

    def complete_checkpoints(self) -> list[Path]:
        """Complete checkpoint folders, oldest first."""
        if not self.checkpoints.is_dir():
            return []
        found = [p for p in self.checkpoints.iterdir() if CHECKPOINT_NAME.match(p.name) and is_checkpoint(p)]
        return sorted(found, key=lambda p: p.name)

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint ``latest`` names; the newest complete one when ``latest`` is missing or stale."""
        latest = self.path / LATEST
        if latest.is_file():
            target = self.path / latest.read_text(encoding="utf-8").strip()
            if is_checkpoint(target):
                return target
        complete = self.complete_checkpoints()
        return complete[-1] if complete else None

    def rotate(self, keep: int, protect: Path) -> None:
        """Remove all but the newest ``keep`` checkpoints (0 keeps all) and stale temporary folders."""
        if self.checkpoints.is_dir():
            for tmp in self.checkpoints.glob(TMP_PREFIX + "*"):
                shutil.rmtree(tmp, ignore_errors=True)
        if keep <= 0:
            return
        for old in self.complete_checkpoints()[:-keep]:
            if old != protect:
                # Out of its final name first: a kill mid-removal leaves a temporary folder (removed by the
                # next rotation), never a half-deleted checkpoint under a checkpoint's name.
                doomed = old.with_name(f"{TMP_PREFIX}{old.name}-removed")
                os.replace(old, doomed)
                shutil.rmtree(doomed, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# A run's options: new or resumed
# --------------------------------------------------------------------------------------------


def resolve_options(spec: TrainSpec, world: int) -> tuple[dict, RunFolder | None, Path | None]:
    """(the run's options, its folder when resuming, the checkpoint to resume from) for ``world`` processes.

    A new run takes the defaults for what ``spec`` leaves out; a resumed run keeps its stored
    options, may repeat but not change what fixes its results, and may change only the schedule."""
    if spec.stage not in STAGES:
        raise MnmError(f"unknown training stage {spec.stage!r}; use one of {', '.join(STAGES)}")
    if spec.resume is not None:
        options, run, checkpoint = _resolve_resume(spec, world)
    else:
        options, run, checkpoint = _resolve_new(spec, world), None, None
    check_positive(options["total_steps"], "--steps/--kimg")
    check_positive(options["snapshot_every"], "--snapshot-every")
    check_positive(options["log_every"], "--log-every")
    if options["keep"] < 0:
        raise MnmError(f"--keep must be 0 (keep all) or more, got {options['keep']}")
    return options, run, checkpoint


def _resolve_new(spec: TrainSpec, world: int) -> dict:
    from mnm.checkpoint import config_from_meta
    from mnm.config import resolve_config
    from mnm.training.options import TrainOptions

    if spec.data is None:
        raise MnmError("--data DIR is required for a new run")
    if spec.steps is None and spec.kimg is None:
        raise MnmError("give the length of the run: --steps N or --kimg K (thousands of images)")
    values = {k: getattr(spec, k) if getattr(spec, k) is not None else v for k, v in DEFAULTS.items()}
    source = None
    if spec.stage == "feature":
        if spec.source is None:
            raise MnmError("the feature stage needs --from RUN_OR_CHECKPOINT (a code-mode run)")
        if spec.preset or spec.config_file or spec.overrides:
            raise MnmError("the feature stage takes its model config from --from:"
                           " drop --preset, --config and --set")
        source = find_checkpoint(spec.source)
        config = config_from_meta(_read_meta(source), source=str(source)).to_dict()
    else:
        if spec.source is not None:
            raise MnmError("--from belongs to the feature stage (mnm train feature)")
        config = resolve_config(spec.preset or "paper", spec.config_file, spec.overrides).to_dict()
    train_options = TrainOptions.from_dict(spec.option_overrides).to_dict()
    check_positive(values["batch"], "--batch")
    global_batch = values["batch"] * world
    total = spec.steps if spec.steps is not None else math.ceil(spec.kimg * 1000 / global_batch)
    return {
        "format": RUN_FORMAT,
        "format_version": 1,
        "created": utc_now(),
        "mnm": mnm.__version__,
        "stage": spec.stage,
        "config": config,
        "train_options": train_options,
        "data": str(Path(spec.data).resolve()),
        "source": None if source is None else str(source.resolve()),
        "total_steps": total,
        "world_size": world,
        "name": spec.name or f"{spec.stage}-{_preset_name(config)}",
        # as given on the command line, so repeating the command with --resume is accepted
        "preset": spec.preset,
        "config_file": spec.config_file,
        "overrides": list(spec.overrides),
        "option_overrides": dict(spec.option_overrides),
        **values,
    }


def _resolve_resume(spec: TrainSpec, world: int) -> tuple[dict, RunFolder, Path]:
    checkpoint = find_checkpoint(spec.resume)
    run = RunFolder(spec.resume) if Path(spec.resume) != checkpoint else RunFolder.of_checkpoint(checkpoint)
    stored = run.read_options()
    if stored.get("format") != RUN_FORMAT:
        raise MnmError(f"{run.options_path}: not the options of an mnm training run")
    if stored["stage"] != spec.stage:
        stage = stored["stage"]
        raise MnmError(f"{run.path} is a {stage}-stage run; resume it with `mnm train {stage}`")
    changed = [k for k in FIXED_ON_RESUME if getattr(spec, k) not in (None, [], {}, stored.get(k))]
    if spec.source is not None and str(find_checkpoint(spec.source).resolve()) != stored.get("source"):
        changed.append("source")
    if changed:
        raise MnmError(f"--resume continues {run.path} as set up: it cannot change {', '.join(changed)}")
    options = dict(stored)
    for key in ("keep", "snapshot_every", "log_every"):
        if getattr(spec, key) is not None:
            options[key] = getattr(spec, key)
    if spec.data is not None:
        options["data"] = str(Path(spec.data).resolve())
    meta = _read_meta(checkpoint)
    if not isinstance(meta.get("step"), int) or not isinstance(meta.get("images_seen"), int):
        raise MnmError(f"{checkpoint / 'meta.json'}: no step or images_seen: not a training run's checkpoint")
    if spec.steps is not None:
        options["total_steps"] = spec.steps
    elif spec.kimg is not None:
        remaining = max(0.0, spec.kimg * 1000 - meta["images_seen"])
        options["total_steps"] = meta["step"] + math.ceil(remaining / (options["batch"] * world))
    # Each resume is recorded: where it continued and with how many processes (the global batch).
    resume = {"step": meta["step"], "world_size": world, "from_world_size": meta.get("world_size"), "at": utc_now()}
    options["resumes"] = [*options.get("resumes", []), resume]
    return options, run, checkpoint


def _preset_name(config: dict) -> str:
    from mnm.config import PRESETS

    return next((name for name, preset in PRESETS.items() if preset.to_dict() == config), "custom")


def _read_meta(checkpoint: Path) -> dict:
    """meta.json alone (the tensors are loaded once the modules exist)."""
    return read_json_object(checkpoint / "meta.json", "checkpoint meta")


def check_positive(value, what: str) -> None:
    if value is None or value < 1:
        raise MnmError(f"{what} must be at least 1, got {value}")
