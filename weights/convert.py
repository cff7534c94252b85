#!/usr/bin/env python3
"""Converts CIFAR ResNet state dicts into the project's weights format (weights/<name>.npz).

Re-runnable; by default it converts the four shared akamaster checkpoints:

    .venv/bin/python weights/convert.py                       # ../shared/data/weights/resnet{20,32,44,56}.npz
    .venv/bin/python weights/convert.py path/to/model.th -o weights/mine.npz   # a torch checkpoint (needs torch)

Inputs: an .npz of a state dict (torch key names, `module.` prefix allowed) or a torch checkpoint
(.th/.pt/.pth, a dict with `state_dict` or a bare state dict). The output records the source file and its
sha256 in the header; see weights/PROVENANCE.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from resnet_fhe.errors import ResnetFheError
from resnet_fhe.hashing import sha256_file
from resnet_fhe.models.convert import convert_state_dict, read_state_dict

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "weights"
ORIGIN = "github.com/akamaster/pytorch_resnet_cifar10 @ d5489e8995e81e91ce6b1d69dcc98ad579b0b153 (BSD-2-Clause)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="*", type=Path, help="state dicts to convert (default: the shared four)")
    parser.add_argument("-o", "--output", type=Path, help="output file (only with one source)")
    args = parser.parse_args(argv)
    sources = args.sources or [SHARED / f"resnet{d}.npz" for d in (20, 32, 44, 56)]
    if args.output and len(sources) != 1:
        parser.error("--output takes exactly one source")
    try:
        for source in sources:
            if not source.is_file():
                raise ResnetFheError(f"{source} not found")
            origin = ORIGIN if source.parent == SHARED else "user supplied"
            weights = convert_state_dict(read_state_dict(source), {
                "file": source.name, "sha256": sha256_file(source), "origin": origin})
            target = args.output or HERE / f"{source.stem.split('-')[0]}.npz"
            weights.save(target)
            print(f"{source} -> {target}", file=sys.stderr)
    except ResnetFheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
