"""A learned ciphertext-only attack on pixel-based image encryption (issue 14; torch extra, CPU, minutes).

The attacker knows the scheme (not the keys: each image has its own) and holds plain images of the same
kind, here the data set's training images. It encrypts them with keys of its own and trains a small
convolutional network to map encrypted images back to plain ones (mean squared error), then applies it
to test images encrypted with keys it never saw. Figures (medians over the test images, PSNR against the
plain image): the encrypted image, the attack's reconstruction, a flat image at the plain image's mean;
and the accuracy of the shipped plain-trained model on the reconstructions, against its accuracy on the
plain and on the encrypted test images: how much of what a classifier needs the attack gives back.

    PYTHONPATH=. .venv-torch/bin/python bench/learned_attack.py --json bench/results/learned-attack.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SETS = {"mnist": "cryptondl-mnist", "fashion-mnist": "cryptondl-fashion-mnist", "cifar10": "resnet20"}
TEST_KEY_SEED = 10**6  # as bench/privacy.py: keys no training epoch used


def inverter(torch, channels: int, width: int = 64, layers: int = 6):
    """A plain fully convolutional network (3 x 3, ReLU) with a sigmoid output: images in, images out."""
    nn = torch.nn
    body = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
    for _ in range(layers - 2):
        body += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
    return nn.Sequential(*body, nn.Conv2d(width, channels, 3, padding=1), nn.Sigmoid())


def psnr(plain: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per image, pixels in [0, 1]."""
    error = ((plain - other) ** 2).reshape(len(plain), -1).mean(1)
    return 10 * np.log10(1 / np.maximum(error, 1e-12))


def attack(dataset: str, epochs: int, train_images: int, test_images: int, seed: int, threads: int) -> dict:
    import torch

    from resnet_fhe.data import load_dataset
    from resnet_fhe.imagecrypt import encrypt_batch
    from resnet_fhe.ir import run_graph
    from resnet_fhe.models import load_model
    from resnet_fhe.models.torch_training import train_epochs

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    train = load_dataset(dataset, "train").images[:train_images]
    test = load_dataset(dataset, "test")
    plain, labels = test.images[:test_images], test.labels[:test_images]
    encrypted = encrypt_batch(plain, seed=TEST_KEY_SEED)
    model = inverter(torch, train.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    batch = 64
    steps = epochs * (-(-len(train) // batch))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    target = torch.from_numpy(train.astype(np.float32) / 255.0)
    generator = torch.Generator().manual_seed(seed)

    def epoch_data(epoch: int) -> tuple:
        return torch.from_numpy(encrypt_batch(train, seed=1000 * seed + epoch).astype(np.float32) / 255.0), target

    train_epochs(torch, model, optimizer, schedule, epochs, batch, generator, epoch_data,
                 torch.nn.functional.mse_loss, label=f"{dataset} ")
    with torch.no_grad():
        recovered = np.concatenate([model(torch.from_numpy(encrypted[i:i + 500].astype(np.float32) / 255.0)).numpy()
                                    for i in range(0, len(encrypted), 500)])
    plain01, encrypted01 = plain / 255.0, encrypted / 255.0
    flat = np.broadcast_to(plain01.mean(axis=(1, 2, 3), keepdims=True), plain01.shape)
    classifier = load_model(SETS[dataset])

    def accuracy(images: np.ndarray) -> float:
        return float(np.mean(run_graph(classifier, images).argmax(1) == labels))

    return {"train_images": len(train), "test_images": len(plain), "epochs": epochs,
            "psnr_encrypted_db": float(np.median(psnr(plain01, encrypted01))),
            "psnr_recovered_db": float(np.median(psnr(plain01, recovered))),
            "psnr_flat_at_the_images_mean_db": float(np.median(psnr(plain01, flat))),
            "classifier": SETS[dataset], "classifier_accuracy_plain": accuracy(plain01),
            "classifier_accuracy_encrypted": accuracy(encrypted01),
            "classifier_accuracy_recovered": accuracy(recovered.astype(np.float64))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=list(SETS), nargs="+", default=list(SETS))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-images", type=int, default=10000)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    if min(args.epochs, args.train_images, args.test_images) < 1:
        parser.error("--epochs, --train-images and --test-images must be positive")
    from resnet_fhe.data import dataset_files

    for dataset in args.dataset:
        if not dataset_files(dataset, "train") or not dataset_files(dataset, "test"):
            parser.error(f"{dataset} training or test files not found")
    import torch

    results = {dataset: attack(dataset, args.epochs, args.train_images, args.test_images, args.seed, args.threads)
               for dataset in args.dataset}
    summary = {"attack": "learned inversion (bench/learned_attack.py)", "torch": torch.__version__,
               "seed": args.seed, "results": results}
    text = json.dumps(summary, indent=1)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
