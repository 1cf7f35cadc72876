"""Write docs/_static/misclassified.png, the picture of the README and of the docs' front page.

    python docs/readme_figure.py

It runs the gallery example ``examples/plot_diagnostics.py`` (on the
ants-and-bees photos when :func:`sktransfer.datasets.find_data_dir` finds
them) and saves its grid of misclassified images, small enough to commit.
"""

import runpy
from pathlib import Path

import matplotlib
from PIL import Image

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "_static" / "misclassified.png"

if __name__ == "__main__":
    example = runpy.run_path(str(ROOT / "examples" / "plot_diagnostics.py"))
    figure = example["mistakes"].figure_
    figure.savefig(OUT, dpi=60)
    # 256 colours: a third of the size, and the thumbnails still read well.
    Image.open(OUT).convert("RGB").quantize(256).save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")
