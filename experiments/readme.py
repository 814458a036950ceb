"""Copy the headline tables and pictures of finished experiments into README.md.

    python -m experiments.readme            # run by the make targets after they finish

README.md marks each generated block with `<!-- NAME:begin -->` ... `<!-- NAME:end -->`; the
block is replaced by the markdown file named in BLOCKS (when that file exists), and the
figures in FIGURES are copied into docs/figures/ (tracked by git, unlike results/).
Blocks whose results are missing are left as they are, so a partial run never erases a table.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

BLOCKS = {
    "toy2d-table": "results/toy2d/results.md",
    "bench-table": "results/bench/flows.md",
    "families-table": "results/bench/families.md",
    "peers-table": "results/bench/peers.md",
    "scale-table": "results/bench/scale.md",
    "contrast-table": "results/contrast/results.md",
    "diffusion-table": "results/diffusion/results.md",
    "images-table": "results/images/results.md",
    "parzen-table": "results/toy2d_parzen/parzen.md",
    "quality-table": "results/images/quality.md",
    "ood-table": "results/ood/results.md",
}
FIGURES = {
    "results/toy2d/checkerboard.png": "docs/figures/toy2d_checkerboard.png",
    "results/toy2d/moons.png": "docs/figures/toy2d_moons.png",
    "results/contrast/moons.png": "docs/figures/contrast_moons.png",
    "results/contrast/demos/naive_mle_diverges.png": "docs/figures/naive_mle_diverges.png",
    "results/contrast/demos/sigmoid_not_a_density.png": "docs/figures/sigmoid_not_a_density.png",
    "results/diffusion/moons.png": "docs/figures/diffusion_moons.png",
    "results/toy2d_parzen/checkerboard.png": "docs/figures/parzen_checkerboard.png",
    "results/images/samples_pixelcnn.png": "docs/figures/samples_pixelcnn.png",
    "results/images/samples.png": "docs/figures/samples_images.png",
}


def replace_block(text: str, name: str, body: str) -> str:
    """Replace the text between the begin/end markers of `name` by `body`."""
    pattern = re.compile(rf"(<!-- {re.escape(name)}:begin -->\n).*?(\n<!-- {re.escape(name)}:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(
            f"README.md has no block {name!r}; add '<!-- {name}:begin -->' and ':end -->' markers"
        )
    return pattern.sub(lambda m: m.group(1) + body.strip() + m.group(2), text)


def update(root: Path = Path("."), readme: str = "README.md") -> list[str]:
    path = root / readme
    text = path.read_text()
    done = []
    for name, source in BLOCKS.items():
        src = root / source
        if src.exists() and f"<!-- {name}:begin -->" in text:
            text = replace_block(text, name, src.read_text())
            done.append(name)
    path.write_text(text)
    for src, dst in FIGURES.items():
        if (root / src).exists():
            (root / dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / src, root / dst)
            done.append(dst)
    return done


def main(argv=None) -> None:
    done = update()
    print("README.md updated: " + (", ".join(done) if done else "nothing (no results yet)"), file=sys.stderr)


if __name__ == "__main__":
    main()
