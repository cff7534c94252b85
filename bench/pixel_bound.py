"""Reads the bound runs of bench/train_cifar_pixel.py (`--scratch --plain` against `--scratch --invariant`,
same recipe, the first N training images) from their JSON outputs and prints, per training-set size, the
test accuracy of each and the gap, and two fits of the gap's trend with the data, gap = a + b / N and
gap = a + b / sqrt(N), extrapolated to the 50,000 images the plain ResNet20 was trained on (issue 14:
does the pixel scheme's information loss alone exceed the 3 pp the CIFAR-10 target allows?).

    .venv/bin/python bench/pixel_bound.py bench/results/privacy-2026-12-02-f \
        --json bench/results/privacy-2026-12-02-f/bound.json

A run's size is its recipe's `train_images` (all 20,000 when absent); runs of one size and seed pair up.
Sizes with more than one seed are averaged for the fits.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ALL_TRAINING_IMAGES = 20_000
PLAIN_MODEL_TRAINING_IMAGES = 50_000


def read_runs(folder: Path) -> dict[tuple[int, int], dict[str, float]]:
    """{(training images, seed): {"plain": accuracy, "invariant": accuracy}} from the recipes (JSON) of
    the --scratch runs in `folder`; the plain run's accuracy on plain test images, the invariant run's on
    encrypted ones."""
    runs: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)
    for path in sorted(folder.glob("*.json")):
        try:
            recipe = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(recipe, dict) or recipe.get("start") != "random" or "test_accuracy_torch" not in recipe:
            continue
        key = (recipe.get("train_images") or ALL_TRAINING_IMAGES, recipe["seed"])
        if recipe["pixel_encrypted_training"]:
            runs[key]["invariant"] = recipe["test_accuracy_torch"]["encrypted_images"]
        else:
            runs[key]["plain"] = recipe["test_accuracy_torch"]["plain_images"]
    return {key: pair for key, pair in runs.items() if len(pair) == 2}


def fit_gap(sizes: np.ndarray, gaps: np.ndarray, feature) -> dict[str, float]:
    """Least-squares gap = a + b * feature(N); a, b and the value at the plain model's 50,000 images."""
    design = np.c_[np.ones(len(sizes)), feature(sizes)]
    (a, b), *_ = np.linalg.lstsq(design, gaps, rcond=None)
    return {"a_pp": round(float(a), 2), "b": round(float(b), 1),
            "gap_at_50000_pp": round(float(a + b * feature(np.float64(PLAIN_MODEL_TRAINING_IMAGES))), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="folder holding train_cifar_pixel.py's JSON outputs")
    parser.add_argument("--json", type=Path, default=None, help="also write the table and fits here")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder}: no such folder")
    runs = read_runs(args.folder)
    if not runs:
        parser.error(f"{args.folder}: no pair of --scratch --plain / --scratch --invariant runs")
    rows = [{"train_images": n, "seed": seed, "plain": pair["plain"], "invariant": pair["invariant"],
             "gap_pp": round(100 * (pair["plain"] - pair["invariant"]), 2)}
            for (n, seed), pair in sorted(runs.items())]
    by_size = defaultdict(list)
    for row in rows:
        by_size[row["train_images"]].append(row["gap_pp"])
        print(f"{row['train_images']:>6} images, seed {row['seed']}: plain {100 * row['plain']:.2f} %, "
              f"invariant {100 * row['invariant']:.2f} %, gap {row['gap_pp']:.2f} pp")
    sizes = np.array(sorted(by_size), dtype=np.float64)
    gaps = np.array([np.mean(by_size[n]) for n in sorted(by_size)])
    result = {"runs": rows, "mean_gap_pp": {int(n): round(float(g), 2) for n, g in zip(sizes, gaps, strict=True)}}
    if len(sizes) >= 3:  # two parameters: a third size is what tests the form
        result["fits"] = {"a + b / N": fit_gap(sizes, gaps, lambda n: 1 / n),
                          "a + b / sqrt(N)": fit_gap(sizes, gaps, lambda n: n ** -0.5)}
        for form, fit in result["fits"].items():
            print(f"gap = {form}: a = {fit['a_pp']} pp, {fit['gap_at_50000_pp']} pp at 50,000 images")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
