"""``python -m mnm.training.cli code|feature ...``: the training commands for ``torchrun``.

``torchrun --nproc_per_node=N -m mnm.training.cli code --data DIR ...`` takes the same options as
``mnm train code``; each process reads the process group from the environment torchrun sets.
``mnm train code --nproc N`` starts its processes the same way (``worker --spec FILE``).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    import mnm.cli.train  # noqa: F401  (registers the train commands)
    from mnm.cli import run

    return run(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
