"""Write the web page's demo references into the server's static files (run once; the PNGs are package data).

    python scripts/make_web_gallery.py

The references are the ones ``mnm demo`` uses (held-out synthetic scenes of the demo model's data);
a test checks that the shipped files are what this writes.
"""

from pathlib import Path

from mnm.cli.demo_files import write_gallery

GALLERY = Path(__file__).resolve().parents[1] / "runtime" / "server" / "static" / "gallery"

if __name__ == "__main__":
    for entry in write_gallery(GALLERY):
        print(GALLERY / entry["file"], "-", entry["label"])
