"""The training loop shared by both stages: data order, per-step randomness, snapshots, stopping.

Exact resume rests on one rule: everything random in step k is derived from (seed, k, rank).
The data order is a permutation per epoch seeded by (seed, epoch); step k of a process reads
positions ``images_seen + rank·batch ...`` of that endless sequence; the numpy generators handed
to the dataset and to the trainer (which draws its torch randomness from it) come from
``SeedSequence([seed, k, rank])``. A checkpoint therefore needs only the module
tensors, the optimiser state and the step; 10 steps + resume + 10 steps equals 20 steps bit for bit.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

import mnm
from mnm.errors import MnmError
from mnm.progress import track
from mnm.training import distributed
from mnm.training.cli import launcher_gone
from mnm.training.run import RunFolder, TrainSpec, find_checkpoint, new_run_dir

RUN_FORMAT = "mnm-run"
STAGES = ("code", "feature")
GRID_IMAGES = 8
# A second SIGINT within this many seconds of the first is the same Ctrl-C delivered twice
# (terminal + launcher forwarding it); a later one aborts without saving.
DUPLICATE_SIGNAL_S = 2.0
_ORDER, _STEP, _GRID = 0, 1, 2  # stream tags of the SeedSequences


# Schedule defaults for a new run; a resumed run keeps its own unless told otherwise.
DEFAULTS = {"batch": 12, "seed": 0, "split": "train", "keep": 3, "snapshot_every": 1000, "log_every": 10}
# What fixes a run's results: a resume may repeat these but not change them.
FIXED_ON_RESUME = ("batch", "seed", "split", "preset", "config_file", "overrides", "option_overrides")


@dataclass
class Outcome:
    """How a call to ``train`` ended (an exception covers every other ending)."""

    run_dir: Path | None  # None on ranks other than 0
    checkpoint: Path | None
    step: int


class Interrupted(Exception):
    """Raised after a stop request (SIGINT/SIGTERM) once the checkpoint is saved."""

    def __init__(self, outcome: Outcome):
        super().__init__(f"stopped at step {outcome.step}")
        self.outcome = outcome


class StopRequest:
    """SIGINT / SIGTERM ask the loop to finish its step, save a checkpoint and stop."""

    def __init__(self, announce: bool):
        self.requested = False
        self.announce = announce
        self._first = 0.0
        self._previous: dict = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        now = time.monotonic()
        if not self.requested:
            self.requested, self._first = True, now
            if self.announce:
                print(
                    "\nstopping: saving a checkpoint after this step (Ctrl-C again to abort without saving)",
                    file=sys.stderr, flush=True,
                )
        elif now - self._first > DUPLICATE_SIGNAL_S:
            raise KeyboardInterrupt


class DataOrder:
    """An endless sequence of dataset indices: one seeded permutation per epoch."""

    def __init__(self, seed: int, n: int):
        self.seed, self.n = seed, n
        self._cache: dict[int, np.ndarray] = {}

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            self._cache = {e: p for e, p in self._cache.items() if e >= epoch - 1}
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, _ORDER, epoch]))
            self._cache[epoch] = rng.permutation(self.n)
        return self._cache[epoch]

    def take(self, start: int, count: int) -> np.ndarray:
        """Indices at positions start .. start+count-1 of the sequence."""
        positions = np.arange(start, start + count)
        return np.array([self.permutation(int(p // self.n))[p % self.n] for p in positions], np.int64)


def step_randomness(seed: int, step: int, rank: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(data rng, trainer rng) of one step on one rank."""
    data_seq, trainer_seq = np.random.SeedSequence([seed, _STEP, step, rank]).spawn(2)
    return np.random.default_rng(data_seq), np.random.default_rng(trainer_seq)


# --------------------------------------------------------------------------------------------
# Setting a run up
# --------------------------------------------------------------------------------------------


def _resolve(spec: TrainSpec, replicas: distributed.Replicas) -> tuple[dict, RunFolder | None, Path | None]:
    """(the run's options, its folder on rank 0, the checkpoint to resume from)."""
    if spec.stage not in STAGES:
        raise MnmError(f"unknown training stage {spec.stage!r}; use one of {', '.join(STAGES)}")
    if spec.resume is not None:
        options, run, checkpoint = _resolve_resume(spec, replicas)
    else:
        options, run, checkpoint = _resolve_new(spec, replicas), None, None
    _check_positive(options["total_steps"], "--steps/--kimg")
    _check_positive(options["snapshot_every"], "--snapshot-every")
    _check_positive(options["log_every"], "--log-every")
    if options["keep"] < 0:
        raise MnmError(f"--keep must be 0 (keep all) or more, got {options['keep']}")
    return options, run, checkpoint


def _resolve_new(spec: TrainSpec, replicas: distributed.Replicas) -> dict:
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
    _check_positive(values["batch"], "--batch")
    global_batch = values["batch"] * replicas.world
    total = spec.steps if spec.steps is not None else math.ceil(spec.kimg * 1000 / global_batch)
    return {
        "format": RUN_FORMAT,
        "format_version": 1,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "mnm": mnm.__version__,
        "stage": spec.stage,
        "config": config,
        "train_options": train_options,
        "data": str(Path(spec.data).resolve()),
        "source": None if source is None else str(source.resolve()),
        "total_steps": total,
        "world_size": replicas.world,
        "name": spec.name or f"{spec.stage}-{_preset_name(config)}",
        # as given on the command line, so repeating the command with --resume is accepted
        "preset": spec.preset,
        "config_file": spec.config_file,
        "overrides": list(spec.overrides),
        "option_overrides": dict(spec.option_overrides),
        **values,
    }


def _resolve_resume(spec: TrainSpec, replicas: distributed.Replicas) -> tuple[dict, RunFolder, Path]:
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
        options["total_steps"] = meta["step"] + math.ceil(remaining / (options["batch"] * replicas.world))
    return options, run, checkpoint


def _preset_name(config: dict) -> str:
    from mnm.config import PRESETS

    return next((name for name, preset in PRESETS.items() if preset.to_dict() == config), "custom")


def _read_meta(checkpoint: Path) -> dict:
    """meta.json alone (the tensors are loaded once the modules exist)."""
    try:
        return json.loads((checkpoint / "meta.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MnmError(f"{checkpoint / 'meta.json'}: not readable JSON ({exc})") from None


def _check_positive(value, what: str) -> None:
    if value is None or value < 1:
        raise MnmError(f"{what} must be at least 1, got {value}")


# --------------------------------------------------------------------------------------------
# The trainer and what a checkpoint holds
# --------------------------------------------------------------------------------------------


@dataclass
class Session:
    trainer: object
    carried: dict  # tensors copied into every checkpoint unchanged (stage 1's networks in stage 2)
    source: dict | None  # where stage 2 started from


def _build(options: dict, device: torch.device, resume_tensors: dict | None) -> Session:
    from mnm.checkpoint import load_checkpoint, load_state
    from mnm.config import ModelConfig
    from mnm.training.options import TrainOptions

    cfg = ModelConfig.from_dict(options["config"], source="run options")
    train_options = TrainOptions.from_dict(options["train_options"])
    torch.manual_seed(options["seed"])  # initial weights; ranks then take rank 0's anyway
    if options["stage"] == "code":
        from mnm.training.code_mode import CodeModeTrainer

        return Session(CodeModeTrainer(cfg, train_options, device), {}, None)

    from mnm.nn.encoders import Encoders
    from mnm.nn.generator import Generator
    from mnm.training.feature_mode import FeatureModeTrainer

    if resume_tensors is not None:
        frozen, origin = resume_tensors, "the resumed checkpoint"
    else:
        frozen, _ = load_checkpoint(options["source"])
        origin = options["source"]
    generator, encoders = Generator(cfg), Encoders(cfg)
    load_state({"generator_ema": generator, "encoders": encoders}, frozen, source=str(origin))
    trainer = FeatureModeTrainer(cfg, train_options, device, generator.to(device), encoders.to(device))
    replaced = tuple(f"{prefix}." for prefix in [*trainer.modules(), "optim"])
    carried = {k: v for k, v in frozen.items() if not k.startswith(replaced)}
    return Session(trainer, carried, {"path": options["source"]})


def _checkpoint_tensors(session: Session) -> dict:
    from mnm.checkpoint import state_tensors

    tensors = dict(session.carried)
    tensors.update(state_tensors(session.trainer.modules()))
    for key, value in session.trainer.optimizer_tensors().items():
        tensors[f"optim.{key}"] = value.detach().to("cpu").clone()
    return tensors


def _restore(session: Session, tensors: dict, checkpoint: Path) -> None:
    from mnm.checkpoint import load_state

    load_state(session.trainer.modules(), tensors, source=str(checkpoint))
    lead = "optim."
    optim = {k[len(lead):]: v for k, v in tensors.items() if k.startswith(lead)}
    session.trainer.load_optimizer_tensors(optim)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def train(spec: TrainSpec) -> Outcome:
    """Run (or continue) a training run; raise ``Interrupted`` after a stop request."""
    if spec.threads is not None:
        _check_positive(spec.threads, "--threads")
        torch.set_num_threads(spec.threads)
    replicas = distributed.init(spec.device)
    if not replicas.is_main:
        os.environ["MNM_NO_PROGRESS"] = "1"  # one progress bar, rank 0's
    try:
        return _train(spec, replicas)
    finally:
        distributed.shutdown(replicas)


def _train(spec: TrainSpec, replicas: distributed.Replicas) -> Outcome:
    from mnm.checkpoint import load_checkpoint
    from mnm.training.datasets import open_dataset

    options, run, checkpoint = _resolve(spec, replicas)
    resume_tensors, start, images_seen = None, 0, 0
    if checkpoint is not None:
        resume_tensors, meta = load_checkpoint(checkpoint)
        if meta.get("config") != options["config"] or meta.get("stage") != options["stage"]:
            raise MnmError(f"{checkpoint}: its config or stage differs from {run.options_path}")
        start, images_seen = meta["step"], meta["images_seen"]
    dataset = open_dataset(options["data"], split=options["split"])
    session = _build(options, replicas.device, resume_tensors)
    if resume_tensors is not None:
        _restore(session, resume_tensors, checkpoint)
        del resume_tensors
    modules = session.trainer.modules()
    replicas.broadcast_modules(modules)
    replicas.average_gradients_before_step(session.trainer.optimizers())

    if replicas.is_main:
        if run is None:
            run = RunFolder(new_run_dir(spec.out, options["name"]))
        else:  # the run continues from ``checkpoint``, even when newer ones exist
            run.point_latest(checkpoint)
            run.truncate_stats(start)
            run.rotate(options["keep"], protect=checkpoint)
        options["world_size"] = replicas.world
        run.write_options(options)
        print(f"run folder: {run.path}", flush=True)
    loop = _Loop(options, run, session, dataset, replicas, start, images_seen, checkpoint)
    return loop.run()


class _Loop:
    """The state of one pass over steps ``start .. total_steps``."""

    def __init__(self, options, run, session, dataset, replicas, start, images_seen, checkpoint):
        self.options, self.folder, self.session, self.dataset = options, run, session, dataset
        self.replicas = replicas
        self.step, self.images_seen = start, images_seen
        self.last_checkpoint = checkpoint  # known on rank 0 only
        self.saved_step = start if checkpoint is not None else None
        self.size = options["config"]["image_size"]
        self.batch, self.seed = options["batch"], options["seed"]
        self.order = DataOrder(self.seed, len(dataset))
        self.window: dict[str, list[float]] = {}
        self.window_start = (time.perf_counter(), start)

    def batch_for(self, step: int, images_seen: int) -> dict:
        """This rank's numpy batch for ``step`` (its slice of the global batch)."""
        start = images_seen + self.replicas.rank * self.batch
        data_rng, _ = step_randomness(self.seed, step, self.replicas.rank)
        return self.dataset.sample_batch(self.order.take(start, self.batch), data_rng, self.size)

    def to_device(self, batch: dict) -> dict:
        device = self.replicas.device
        return {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in batch.items()}

    def run(self) -> Outcome:
        total = self.options["total_steps"]
        global_batch = self.batch * self.replicas.world
        if self.step >= total:
            if self.replicas.is_main:
                print(f"the run is already at step {self.step} of {total}; nothing to do", file=sys.stderr)
            return self.outcome()
        with StopRequest(self.replicas.is_main) as stop, ThreadPoolExecutor(1) as prefetch, track(
            total=total - self.step, desc=f"train {self.options['stage']}", unit="step"
        ) as bar:
            upcoming = prefetch.submit(self.batch_for, self.step, self.images_seen)
            while self.step < total:
                batch = upcoming.result()
                if self.step + 1 < total:
                    upcoming = prefetch.submit(self.batch_for, self.step + 1, self.images_seen + global_batch)
                stats = self.train_step(batch)
                self.step += 1
                self.images_seen += global_batch
                stopping = self.replicas.any(stop.requested or launcher_gone())
                self.record(stats, bar, flush=stopping or self.step == total)
                if stopping or self.step == total or self.step % self.options["snapshot_every"] == 0:
                    self.snapshot()
                if stopping:
                    raise Interrupted(self.outcome())
        return self.outcome()

    def train_step(self, batch: dict) -> dict[str, float]:
        from mnm.training.losses import NonFiniteLoss

        _, trainer_rng = step_randomness(self.seed, self.step, self.replicas.rank)
        try:
            losses = self.session.trainer.train_step(self.to_device(batch), trainer_rng)
        except NonFiniteLoss as exc:
            what = f"loss {exc.loss_name} = {exc.value} in the {exc.step_name} step"
            raise self.non_finite(what, self.step + 1) from None
        self.replicas.average_buffers(self.session.trainer.modules())
        stats = self.replicas.mean_stats(losses)
        bad = sorted(k for k, v in stats.items() if not math.isfinite(v))
        if bad:
            raise self.non_finite(f"loss {bad[0]} = {stats[bad[0]]}", self.step + 1)
        return stats

    def non_finite(self, what: str, step: int) -> MnmError:
        """The one-line report of a blow-up: what, when, and the checkpoint to go back to."""
        if self.saved_step is None:
            last = "none yet"
        else:
            last = self.last_checkpoint if self.replicas.is_main else f"step {self.saved_step} (see rank 0)"
        return MnmError(f"non-finite {what} at step {step}; stopped without saving; last good checkpoint: {last}")

    def record(self, stats: dict[str, float], bar, flush: bool) -> None:
        """Average the stats over each logging interval into one stats.jsonl record."""
        for key, value in stats.items():
            self.window.setdefault(key, []).append(value)
        bar.update(1)
        if self.step % self.options["log_every"] and not flush:
            return
        now = time.perf_counter()
        t0, s0 = self.window_start
        steps = self.step - s0
        means = {k: float(np.mean(v)) for k, v in self.window.items()}
        images_per_s = steps * self.batch * self.replicas.world / max(now - t0, 1e-9)
        self.window, self.window_start = {}, (now, self.step)
        if self.replicas.is_main:
            self.folder.append_stats({
                "step": self.step, "kimg": self.images_seen / 1000, "images_per_s": images_per_s,
                "sec_per_step": (now - t0) / max(steps, 1), **means,
            })
            bar.set_postfix_str(_postfix(means, images_per_s), refresh=False)

    def snapshot(self) -> None:
        """Checkpoint (and sample grid) at the current step; collective across ranks.

        Its time is left out of the throughput of the logging interval it falls in.
        """
        began = time.perf_counter()
        tensors = _checkpoint_tensors(self.session)
        broken = next((k for k, t in tensors.items() if t.is_floating_point() and not t.isfinite().all()), None)
        if broken is not None:
            raise self.non_finite(f"tensor {broken} in the training state", self.step)
        checksums = self.replicas.checksums(tensors)
        if len(set(checksums)) != 1:
            raise MnmError(f"replicas diverged at step {self.step}: tensor checksums {checksums}")
        if self.replicas.is_main:
            meta = {
                "stage": self.options["stage"],
                "step": self.step,
                "images_seen": self.images_seen,
                "config": self.options["config"],
                "train_options": self.options["train_options"],
                "has_extractor": self.options["stage"] == "feature",
                "seed": self.seed,
                "batch": self.batch,
                "world_size": self.replicas.world,
                "data_order": {
                    "images": len(self.dataset),
                    "epoch": self.images_seen // len(self.dataset),
                    "position": self.images_seen % len(self.dataset),
                },
                "source": self.session.source,
                "replica_checksums": checksums,
            }
            self.last_checkpoint = self.folder.save_checkpoint(self.step, tensors, meta, self.options["keep"])
            self.folder.save_sample(self.step, self.sample_grid())
        self.saved_step = self.step
        self.replicas.barrier()
        t0, s0 = self.window_start
        self.window_start = (t0 + time.perf_counter() - began, s0)

    def sample_grid(self) -> np.ndarray:
        n = min(GRID_IMAGES, len(self.dataset))
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _GRID]))
        grid_batch = self.to_device(self.dataset.sample_batch(np.arange(n), rng, self.size))
        return self.session.trainer.sample_grid(grid_batch)

    def outcome(self) -> Outcome:
        run_dir = self.folder.path if self.folder is not None else None
        return Outcome(run_dir, self.last_checkpoint, self.step)


def _postfix(means: dict[str, float], images_per_s: float) -> str:
    """The losses summed by family (d_*, g_*, info_*, ...) and the throughput: one short line."""
    families: dict[str, float] = {}
    for key, value in means.items():
        family = key.split("_", 1)[0]
        families[family] = families.get(family, 0.0) + value
    return " ".join(f"{k}={v:.3g}" for k, v in families.items()) + f" img/s={images_per_s:.1f}"
