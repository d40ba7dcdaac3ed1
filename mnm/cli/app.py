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
    add_completion=False,
)
model_app = typer.Typer(help="Inspect model presets: parameters and multiply-accumulates per graph.",
                        no_args_is_help=True)
data_app = typer.Typer(help="Make synthetic data with ground truth and check dataset folders.", no_args_is_help=True)
train_app = typer.Typer(help="Train MixNMatch: code mode (stage 1) and feature mode (stage 2).", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate a run: clustering, disentanglement, FID/KID.", no_args_is_help=True)

app.add_typer(model_app, name="model")
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")

STATE = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    STATE["debug"] = debug
