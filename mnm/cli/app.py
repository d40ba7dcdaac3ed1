"""The typer application and its command groups.

Command modules register onto these objects; each imports its heavy dependencies (torch,
onnx) inside the command body, so ``mnm --help`` and the runtime commands never import torch.
"""

import typer

app = typer.Typer(
    name="mnm",
    help="MixNMatch: train, export, and mix-and-match or animate images with a torch-free runtime.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: [default: ...] and [,out] must show as written
    add_completion=False,
)


def _group(help_text: str) -> typer.Typer:
    """A command group with the root's settings (plain help text, help when called bare)."""
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None)


model_app = _group("Inspect model presets: parameters and multiply-accumulates per graph.")
data_app = _group("Make synthetic data with ground truth and check dataset folders.")
train_app = _group("Train MixNMatch: code mode (stage 1) and feature mode (stage 2).")
eval_app = _group("Evaluate a run: clustering, disentanglement, FID/KID.")

app.add_typer(model_app, name="model")
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")

STATE = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    STATE["debug"] = debug
