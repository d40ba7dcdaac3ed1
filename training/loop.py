"""The training loop shared by both stages: data order, per-step randomness, snapshots, stopping.

Exact resume rests on one rule: everything random in step k is derived from (seed, k, rank).
The data order is a permutation per epoch seeded by (seed, epoch); step k of a process reads
positions ``images_seen + rank·batch ...`` of that endless sequence; the numpy generators handed
to the dataset and to the trainer (which draws its torch randomness from it) come from
``SeedSequence([seed, k, rank])``. A checkpoint therefore needs only the module
tensors, the optimiser state and the step; 10 steps + resume + 10 steps equals 20 steps bit for bit.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mnm.errors import MnmError
from mnm.progress import track
from mnm.training import distributed
from mnm.training.launcher import launcher_gone
from mnm.training.run import RunFolder, TrainSpec, check_positive, new_run_dir, resolve_options

GRID_IMAGES = 8
# A second SIGINT within this many seconds of the first is the same Ctrl-C delivered twice
# (terminal + launcher forwarding it); a later one aborts without saving.
DUPLICATE_SIGNAL_S = 2.0
_ORDER, _STEP, _GRID = 0, 1, 2  # stream tags of the SeedSequences




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
# The trainer and what a checkpoint holds
# --------------------------------------------------------------------------------------------


@dataclass
class StageSetup:
    """A stage's trainer and what its checkpoints carry besides the trainer's own modules."""

    trainer: object
    carried: dict  # tensors copied into every checkpoint unchanged (stage 1's networks in stage 2)
    source: dict | None  # where stage 2 started from


def _build(options: dict, device: torch.device, resume_tensors: dict | None) -> StageSetup:
    from mnm.checkpoint import load_checkpoint, load_state
    from mnm.config import ModelConfig
    from mnm.training.options import TrainOptions

    cfg = ModelConfig.from_dict(options["config"], source="run options")
    train_options = TrainOptions.from_dict(options["train_options"])
    torch.manual_seed(options["seed"])  # initial weights; ranks then take rank 0's anyway
    if options["stage"] == "code":
        from mnm.training.code_mode import CodeModeTrainer

        return StageSetup(CodeModeTrainer(cfg, train_options, device), {}, None)

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
    return StageSetup(trainer, carried, {"path": options["source"]})


def _checkpoint_tensors(setup: StageSetup) -> dict:
    from mnm.checkpoint import state_tensors

    tensors = dict(setup.carried)
    tensors.update(state_tensors(setup.trainer.modules()))
    for key, value in setup.trainer.optimizer_tensors().items():
        tensors[f"optim.{key}"] = value.detach().to("cpu").clone()
    return tensors


def _restore(setup: StageSetup, tensors: dict, checkpoint: Path) -> None:
    from mnm.checkpoint import load_state

    load_state(setup.trainer.modules(), tensors, source=str(checkpoint))
    lead = "optim."
    optim = {k[len(lead):]: v for k, v in tensors.items() if k.startswith(lead)}
    setup.trainer.load_optimizer_tensors(optim)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def check_resume(meta: dict, checkpoint: Path, options: dict, images: int, world: int) -> str | None:
    """Refuse a data set of another size (the data order is a permutation of that many images, so the
    rest of the run would see another order); return a note when the number of processes changed (the
    global batch changes; the order continues at the same image, the steps' randomness differs from an
    uninterrupted run), which ``resolve_options`` records in options.json under ``resumes``."""
    order = meta.get("data_order")
    if isinstance(order, dict) and order.get("images") not in (None, images):
        raise MnmError(
            f"{checkpoint}: trained on a data set of {order['images']} images, but {options['data']} "
            f"({options['split']} split) has {images}; resume with the same data (the order of the images "
            "depends on their number) or start a new run"
        )
    before = meta.get("world_size")
    if isinstance(before, int) and before != world:
        batch = options["batch"]
        return (f"resuming a run of {before} process(es) with {world}: the global batch goes from {batch * before} "
                f"to {batch * world} images per step; the data continue at image {meta['images_seen']}; recorded "
                "in options.json (resumes)")
    return None


def train(spec: TrainSpec) -> Outcome:
    """Run (or continue) a training run; raise ``Interrupted`` after a stop request."""
    if spec.threads is not None:
        check_positive(spec.threads, "--threads")
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

    options, run, checkpoint = resolve_options(spec, replicas.world)
    resume_tensors, start, images_seen, meta = None, 0, 0, None
    if checkpoint is not None:
        resume_tensors, meta = load_checkpoint(checkpoint)
        if meta.get("config") != options["config"] or meta.get("stage") != options["stage"]:
            raise MnmError(f"{checkpoint}: its config or stage differs from {run.options_path}")
        start, images_seen = meta["step"], meta["images_seen"]
    dataset = open_dataset(options["data"], split=options["split"])
    if meta is not None:
        note = check_resume(meta, checkpoint, options, len(dataset), replicas.world)
        if note and replicas.is_main:
            print(f"note: {note}", file=sys.stderr, flush=True)
    setup = _build(options, replicas.device, resume_tensors)
    if resume_tensors is not None:
        _restore(setup, resume_tensors, checkpoint)
        del resume_tensors
    modules = setup.trainer.modules()
    replicas.broadcast_modules(modules)
    replicas.average_gradients_before_step(setup.trainer.optimizers())

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
    loop = _Loop(options, run, setup, dataset, replicas, start, images_seen, checkpoint)
    return loop.run()


class _Loop:
    """The state of one pass over steps ``start .. total_steps``."""

    def __init__(self, options, run, setup, dataset, replicas, start, images_seen, checkpoint):
        self.options, self.folder, self.setup, self.dataset = options, run, setup, dataset
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
            losses = self.setup.trainer.train_step(self.to_device(batch), trainer_rng)
        except NonFiniteLoss as exc:  # every process gets here at once (the check is agreed on)
            raise self.non_finite(exc.what, self.step + 1) from None
        self.replicas.average_buffers(self.setup.trainer.modules())
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
        tensors = _checkpoint_tensors(self.setup)
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
                "source": self.setup.source,
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
        return self.setup.trainer.sample_grid(grid_batch)

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
