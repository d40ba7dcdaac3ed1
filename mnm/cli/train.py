"""``mnm train code`` (stage 1) and ``mnm train feature`` (stage 2).

Both write a run folder (``--out runs`` → ``runs/<NNNNN>-<name>/``: options.json, stats.jsonl,
samples/, checkpoints/, latest), continue exactly with ``--resume``, save and exit 130 on Ctrl-C,
and run data-parallel with ``--nproc N`` (or under ``torchrun -m mnm train ...``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from mnm.cli.app import train_app
from mnm.errors import MnmError

# Options shared by both stages, declared once.
Data = Annotated[Path | None, typer.Option(
    "--data", help="Dataset folder: CUB layout (as `mnm data synth` writes), Stanford Dogs, Stanford Cars, "
    "or images with a boxes file. Required for a new run; on --resume, only to point at moved data.")]
Out = Annotated[Path, typer.Option(
    "--out", help="Folder of run folders: a new run goes to OUT/<NNNNN>-<name>/.")]
Name = Annotated[str | None, typer.Option(
    "--name", help="Run name after the number (default: <stage>-<preset>).")]
Resume = Annotated[Path | None, typer.Option(
    "--resume", help="Continue a run folder (its latest checkpoint) or a checkpoint inside one, exactly "
    "as if it had not stopped; give --steps/--kimg to extend it.")]
Steps = Annotated[int | None, typer.Option("--steps", help="Train until this many steps in total.")]
Kimg = Annotated[float | None, typer.Option("--kimg", help="Train until this many thousand images in total.")]
Batch = Annotated[int | None, typer.Option("--batch", help="Images per step per process (default 12).")]
Seed = Annotated[int | None, typer.Option(
    "--seed", min=0, help="Seed of the initial weights, the data order and all noise (default 0).")]
Split = Annotated[str | None, typer.Option(
    "--split", help="Dataset split: train, test or all (default train).")]
Keep = Annotated[int | None, typer.Option(
    "--keep", help="Checkpoints to keep, newest first; 0 keeps all (default 3).")]
Snapshot = Annotated[int | None, typer.Option(
    "--snapshot-every", help="Steps between checkpoints and sample grids (default 1000; always at the end).")]
LogEvery = Annotated[int | None, typer.Option(
    "--log-every", help="Steps averaged into one stats.jsonl record (default 10).")]
Lr = Annotated[float | None, typer.Option(
    "--lr", help="Learning rate of the trained networks (default: the paper's).")]
Threads = Annotated[int | None, typer.Option(
    "--threads", help="CPU threads for PyTorch (torch.set_num_threads).")]
Device = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cuda or cpu.")]
Amp = Annotated[bool, typer.Option("--amp", help="bfloat16 autocast on CUDA.")]
Nproc = Annotated[int, typer.Option(
    "--nproc", help="Data-parallel processes on this machine (one per GPU; gloo on CPU).")]


@train_app.command("code")
def code(
    data: Data = None,
    out: Out = Path("runs"),
    name: Name = None,
    resume: Resume = None,
    preset: str | None = typer.Option(
        None, "--preset", help="Model size: paper, lite or tiny (default paper)."),
    config: Path | None = typer.Option(
        None, "--config", help="JSON file of ModelConfig fields over the preset."),
    set_: list[str] | None = typer.Option(None, "--set", help="key=value model config override; repeatable."),
    steps: Steps = None,
    kimg: Kimg = None,
    batch: Batch = None,
    seed: Seed = None,
    split: Split = None,
    keep: Keep = None,
    snapshot_every: Snapshot = None,
    log_every: LogEvery = None,
    lr: Lr = None,
    no_paired_adv: bool = typer.Option(
        False, "--no-paired-adv",
        help="Ablation: instead of the paired image-code discriminators (Eq. 2), an L1 reconstruction of real "
        "images through E then G."),
    no_code_repred: bool = typer.Option(
        False, "--no-code-repred", help="Ablation: drop the code-reprediction loss on E (Eq. 3)."),
    repred_with_constraints: bool = typer.Option(
        False, "--repred-with-constraints",
        help="Ablation: sample the reprediction codes with the constraints (the reference does not)."),
    pair_loss: str | None = typer.Option(
        None, "--pair-loss",
        help="Objective of the paired discriminators: wgan-gp (the reference's) or bce (Eq. 2)."),
    mask_max_area: float | None = typer.Option(
        None, "--mask-max-area",
        help="Not in the reference: penalise parent and child masks covering more than this share of the image "
        "(e.g. 0.35 for short CPU runs; 1 = off, the default)."),
    threads: Threads = None,
    device: Device = "auto",
    amp: Amp = False,
    nproc: Nproc = 1,
) -> None:
    """Stage 1: train the encoders, the generator and the paired discriminators (code mode)."""
    options = _given(lr=lr, paired_adv=_off(no_paired_adv), code_repred=_off(no_code_repred),
                     repred_with_constraints=repred_with_constraints or None, pair_loss=pair_loss,
                     mask_max_area=mask_max_area, amp=amp or None)
    spec = _spec("code", locals(), options, preset=preset, config_file=config, overrides=set_ or [])
    raise typer.Exit(execute(spec, nproc))


@train_app.command("feature")
def feature(
    source: Path | None = typer.Option(
        None, "--from", help="The code-mode run (its latest checkpoint) or checkpoint to start from: "
        "G (EMA) and E are loaded and frozen. Required for a new run."),
    data: Data = None,
    out: Out = Path("runs"),
    name: Name = None,
    resume: Resume = None,
    steps: Steps = None,
    kimg: Kimg = None,
    batch: Batch = None,
    seed: Seed = None,
    split: Split = None,
    keep: Keep = None,
    snapshot_every: Snapshot = None,
    log_every: LogEvery = None,
    lr: Lr = None,
    no_feature_l1: bool = typer.Option(
        False, "--no-feature-l1", help="Ablation: drop the L1 loss between S(G(codes)) and φ(p, z)."),
    no_feature_adv: bool = typer.Option(
        False, "--no-feature-adv", help="Ablation: drop the adversarial loss on S's real-image features."),
    feature_codes: str | None = typer.Option(
        None, "--feature-codes",
        help="Codes for S's training: constrained (as stage 1's adversarial side; the default) or reference "
        "(b, p, c independent, a soft p in 20 % of batches, as the reference's second stage)."),
    threads: Threads = None,
    device: Device = "auto",
    amp: Amp = False,
    nproc: Nproc = 1,
) -> None:
    """Stage 2: train the shape/pose feature extractor S against the frozen stage-1 networks."""
    options = _given(lr=lr, feature_l1=_off(no_feature_l1), feature_adv=_off(no_feature_adv),
                     feature_codes=feature_codes, amp=amp or None)
    spec = _spec("feature", locals(), options, source=source)
    raise typer.Exit(execute(spec, nproc))


@train_app.command("worker", hidden=True)
def worker(spec_file: Path = typer.Option(..., "--spec")) -> None:
    """One process of an ``--nproc`` run (started by the launcher)."""
    from mnm.training.run import TrainSpec

    raise typer.Exit(execute(TrainSpec.from_dict(json.loads(spec_file.read_text())), 1))


def _off(flag: bool) -> bool | None:
    """A --no-X switch: False when given, otherwise left to the options' default."""
    return False if flag else None


def _given(**values) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _spec(stage: str, given: dict, options: dict, **extra):
    """The TrainSpec of a command from its parameters (``given``: the command's locals)."""
    from mnm.training.run import TrainSpec

    def path(value):
        return None if value is None else str(value)

    return TrainSpec(
        stage=stage, data=path(given["data"]), out=str(given["out"]), name=given["name"],
        resume=path(given["resume"]), option_overrides=options, steps=given["steps"], kimg=given["kimg"],
        batch=given["batch"], seed=given["seed"], split=given["split"], keep=given["keep"],
        snapshot_every=given["snapshot_every"], log_every=given["log_every"], threads=given["threads"],
        device=given["device"], **{k: path(v) if isinstance(v, Path) else v for k, v in extra.items()},
    )


def execute(spec, nproc: int) -> int:
    """Run one training (here, or in ``nproc`` processes) and report how it ended; the exit code."""
    if nproc < 1:
        raise MnmError(f"--nproc must be at least 1, got {nproc}")
    if spec.device not in ("auto", "cpu", "cuda"):
        raise MnmError(f"--device must be auto, cpu or cuda, got {spec.device!r}")
    if nproc > 1:
        if "WORLD_SIZE" in os.environ:
            raise MnmError("--nproc under torchrun: torchrun already starts the processes")
        from mnm.training.launcher import launch

        return launch(spec.to_dict(), nproc)

    from mnm.training.loop import Interrupted, train

    try:
        outcome = train(spec)
    except Interrupted as exc:
        stopped = exc.outcome
        if stopped.run_dir is not None:
            print(f"interrupted at step {stopped.step}; checkpoint saved: {stopped.checkpoint}; "
                  f"continue with `mnm train {spec.stage} --resume {stopped.run_dir}`", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("aborted without saving; the run keeps its last complete checkpoint", file=sys.stderr)
        return 130
    if outcome.run_dir is not None:
        print(f"done: step {outcome.step}; checkpoint: {outcome.checkpoint}")
    return 0
