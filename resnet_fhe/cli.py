"""The `resnet-fhe` command line. Results go to stdout (and --json); progress and errors to stderr."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from resnet_fhe.errors import ResnetFheError


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    _log(f"wrote {path}")


def _dataset(args: argparse.Namespace):
    from resnet_fhe.data import load_cifar10, load_sample

    if args.sample:
        data = load_sample()
    else:
        data = load_cifar10(args.split, args.data_dir)
    return data.take(args.images, args.start)


def plain_logits(graph, images: np.ndarray, chunk: int = 1000) -> np.ndarray:
    """Plaintext logits in float32 (as torch computes them), with progress on stderr for long runs."""
    from resnet_fhe.ir import run_graph

    parts = []
    for start in range(0, len(images), chunk):
        parts.append(run_graph(graph, images[start:start + chunk].astype(np.float32) / 255, dtype=np.float32))
        if len(images) > chunk:
            _log(f"  plain: {min(start + chunk, len(images))}/{len(images)} images")
    return np.concatenate(parts)


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from resnet_fhe.models import load_model

    data = _dataset(args)
    graph = load_model(args.model)
    _log(f"evaluating {graph.name} ({args.mode}) on {len(data)} {data.split} images from {data.source}")
    started = time.perf_counter()
    logits = plain_logits(graph, data.images)
    correct = int((logits.argmax(axis=1) == data.labels).sum())
    result = {
        "model": args.model, "network": graph.name, "mode": args.mode, "split": data.split,
        "images": len(data), "first_image": args.start, "data_source": data.source,
        "correct": correct, "top1": correct / len(data), "seconds": round(time.perf_counter() - started, 2),
    }
    print(f"{graph.name} {args.mode}: top-1 {100 * result['top1']:.2f}% ({correct}/{len(data)} {data.split} images)")
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resnet-fhe", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    evaluate = commands.add_parser("evaluate", help="accuracy of a model on CIFAR-10")
    evaluate.add_argument("--model", default="resnet20", help="name in weights/ or a weights .npz path")
    evaluate.add_argument("--mode", choices=["plain"], default="plain", help="execution mode")
    evaluate.add_argument("--images", type=int, default=None, help="number of images (default: all)")
    evaluate.add_argument("--start", type=int, default=0, help="index of the first image")
    evaluate.add_argument("--split", choices=["test", "train"], default="test")
    evaluate.add_argument("--data-dir", type=Path, default=None,
                          help="CIFAR-10 python batches (default: $RESNET_FHE_CIFAR10_DIR or ../shared/data)")
    evaluate.add_argument("--sample", action="store_true", help="use the test sample shipped in the package")
    evaluate.add_argument("--json", type=Path, default=None, help="also write the result here")
    evaluate.set_defaults(handler=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
        _write_json(args.json, result)
    except ResnetFheError as exc:
        _log(f"error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
