"""Write the shipped example inputs and their sha256 list (run once; the files are committed).

    python scripts/make_example_inputs.py

``examples/inputs``: the eight references ``mnm demo`` uses (held-out synthetic scenes of the demo
model's data, named by what they show) and ``clip.mp4``, the demo's clip of one bird turning.
``mnm/assets/demo/inputs.sha256``: the images' sha256, by which ``mnm mix`` tells the demo model's
own inputs from photos. A test checks that the shipped files are what this writes.
"""

import hashlib
from pathlib import Path

from mnm.cli.demo_files import write_examples
from mnm.demo import KNOWN_INPUTS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "inputs"

if __name__ == "__main__":
    paths = write_examples(EXAMPLES)
    images = [p for p in paths if p.suffix == ".png"]
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(ROOT)}" for p in images]
    KNOWN_INPUTS.write_text("\n".join(lines) + "\n")
    for path in paths:
        print(path.relative_to(ROOT))
    print(KNOWN_INPUTS.relative_to(ROOT))
