#!/usr/bin/env python3
"""How far unseen images exceed calibrated per-channel maxima: the evidence behind the compiler's margin.

Calibrates on the first N training images (for each N given), measures every channel's largest |value|
on a disjoint block of other training images, and prints per activation input (and overall) the largest
ratio unseen max / calibrated max. A ratio above the compiler's margin means some unseen image would push
a polynomial input outside [-1, 1], where it diverges. Test images are never used.

    OMP_NUM_THREADS=2 .venv/bin/python bench/calibration_headroom.py --calibration 1024 10000 --held-out 10000
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--calibration", type=int, nargs="+", default=[1024, 10000])
    parser.add_argument("--held-out", type=int, default=10000, help="training images after the calibration ones")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)

    from resnet_fhe.compiler.calibrate import calibrate
    from resnet_fhe.compiler.scales import CHANNEL_FLOOR
    from resnet_fhe.data import load_cifar10
    from resnet_fhe.errors import ResnetFheError
    from resnet_fhe.ir.graph import ReLU
    from resnet_fhe.models import load_model

    try:
        graph = load_model(args.model)
        train = load_cifar10("train", args.data_dir)
        first_unseen = max(args.calibration)
        if first_unseen + args.held_out > len(train):
            raise ResnetFheError(f"{first_unseen} + {args.held_out} images asked for, {len(train)} available")
    except ResnetFheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    activation_inputs = [node.inputs[0] for node in graph.nodes if isinstance(node, ReLU)]
    unseen = calibrate(graph, train.take(args.held_out, first_unseen), images=args.held_out).ranges
    report = {"model": args.model, "held_out": args.held_out, "calibrations": {}}
    for count in args.calibration:
        seen = calibrate(graph, train.take(count), images=count).ranges
        ratios = {}
        for name in activation_inputs:
            # the compiler floors a channel's range at CHANNEL_FLOOR x the tensor's largest
            floor = np.maximum(seen[name], CHANNEL_FLOOR * seen[name].max())
            ratios[name] = round(float(np.max(unseen[name] / floor)), 3)
        worst = max(ratios, key=ratios.get)
        report["calibrations"][count] = {"largest_ratio": ratios[worst], "at": worst, "per_activation": ratios}
        print(f"calibrated on {count} images: unseen maxima reach {ratios[worst]:.3f}x the calibrated "
              f"per-channel maxima (at {worst})", file=sys.stderr)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
