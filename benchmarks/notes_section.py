"""One benchmark's section inside the hand-written notes of benchmarks/RESULTS.md, between its markers.

Each benchmark that reports there owns a section (``<!-- NAME: ... -->`` to ``<!-- END NAME -->``);
regenerating RESULTS.md keeps the notes, and a rerun replaces only its own section.
"""

from __future__ import annotations

from pathlib import Path

from mnm.atomic import write_text

NOTES_END = "<!-- END NOTES -->"


def write_section(path: Path, section: str, begin: str, end: str) -> None:
    """Replace the text from ``begin`` to ``end`` with ``section`` (which holds both markers), or add
    it at the end of the notes (or of the file)."""
    text = path.read_text(encoding="utf-8")
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    elif NOTES_END in text:
        head, tail = text.split(NOTES_END, 1)
        text = head.rstrip("\n") + "\n\n" + section + "\n" + NOTES_END + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    write_text(path, text)


def machine_sentence(machine: dict, load_end: list[float] | None) -> str:
    """The machine beside the numbers (``mnm.runtime.machine.details``), with its load before and after."""
    load = ", ".join(f"{v:.2f}" for v in machine.get("load_average") or [])
    end = ", ".join(f"{v:.2f}" for v in load_end or [])
    libraries = ", ".join(f"{k} {v}" for k, v in machine["libraries"].items())
    return (
        f"Machine: {machine['cpu']}, {machine['physical_cores']} physical cores "
        f"({', '.join(machine['cpu_features'])}), {machine['memory_gib']} GiB; {libraries}. Load average "
        f"(1, 5, 15 min) {load} at the start, {end} at the end (a shared machine gives noisy numbers)."
    )
