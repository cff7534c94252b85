"""Fine-tunes the shipped ResNet20 on pixel-encrypted CIFAR-10 images (issue 14; torch extra, CPU) and writes it
in the project's weights format through the torch tracer.

Pixel-based encryption (resnet_fhe.imagecrypt: keyed negative-positive transform of every colour component
and keyed shuffle of each pixel's components, Sirichotedumrong, Kinoshita and Kiya 2019), a new independent
key for every image in every epoch, as the paper trains: no key is managed. The model starts from the
shipped weights (plain images, 91.73 %) and is trained on the workspace's training batches only (20,000
images); `--augment` adds the usual random crops (4-pixel zero padding) and mirrors, applied to the
encrypted images (the encrypted-domain augmentation the paper describes: a crop or mirror of an encrypted
image is an encryption of the cropped or mirrored image under a moved key). SGD with momentum and a cosine
schedule. The test set is read once, at the end: accuracy on its images encrypted with keys no training
epoch used, and on its plain images.

    PYTHONPATH=. .venv-torch/bin/python bench/train_cifar_pixel.py --epochs 10 --out weights/pixel-resnet20.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def encrypted(images: np.ndarray, seed: int) -> np.ndarray:
    from resnet_fhe.imagecrypt import encrypt_batch

    return encrypt_batch(images, seed=seed)


def augment(torch, images, generator):
    """Random 32 x 32 crops of the 4-pixel zero-padded images and random mirrors, per image."""
    n = len(images)
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    dy, dx = torch.randint(0, 9, (2, n), generator=generator).tolist()
    cropped = torch.stack([padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32] for i in range(n)])
    mirror = torch.rand(n, generator=generator) < 0.5
    return torch.where(mirror[:, None, None, None], cropped.flip(3), cropped)


def accuracy(torch, model, images: np.ndarray, labels: np.ndarray, mean, std) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for first in range(0, len(images), 500):
            x = (torch.from_numpy(images[first:first + 500].astype(np.float32) / 255.0) - mean) / std
            correct += int((model(x).argmax(1).numpy() == labels[first:first + 500]).sum())
    return correct / len(images)


def train(epochs: int, seed: int, threads: int, augment_images: bool, lr: float, data_dir) -> tuple:
    import torch

    from resnet_fhe.data import load_dataset
    from resnet_fhe.models.torch_resnet import torch_resnet_from_weights
    from resnet_fhe.models.torch_training import train_epochs
    from resnet_fhe.models.weights_file import load_weights

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    weights = load_weights("resnet20")
    prep = weights.meta["preprocessing"]
    mean = torch.tensor(prep["mean"], dtype=torch.float32)[:, None, None]
    std = torch.tensor(prep["std"], dtype=torch.float32)[:, None, None]
    model = torch_resnet_from_weights(weights)
    data = load_dataset("cifar10", "train", data_dir)
    labels = torch.from_numpy(data.labels)
    batch = 128
    steps = epochs * (-(-len(labels) // batch))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4, nesterov=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.15)
    generator = torch.Generator().manual_seed(seed)

    def epoch_data(epoch: int) -> tuple:
        return torch.from_numpy(encrypted(data.images, seed=1000 * seed + epoch).astype(np.float32) / 255.0), labels

    def normalised(images):
        return ((augment(torch, images, generator) if augment_images else images) - mean) / std

    train_epochs(torch, model, optimizer, schedule, epochs, batch, generator, epoch_data,
                 torch.nn.functional.cross_entropy, normalised)
    test = load_dataset("cifar10", "test", data_dir)
    results = {"encrypted_images": accuracy(torch, model, encrypted(test.images, seed=10**6 + seed), test.labels,
                                            mean, std),
               "plain_images": accuracy(torch, model, test.images, test.labels, mean, std)}
    return model.eval(), results, prep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--augment", action="store_true", help="random crops and mirrors of the encrypted images")
    parser.add_argument("--lr", type=float, default=0.05, help="peak learning rate (one cycle)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding the CIFAR-10 batches")
    parser.add_argument("--out", type=Path, default=None, help="weights file to write (.npz)")
    args = parser.parse_args(argv)
    from resnet_fhe.data import dataset_files

    if not dataset_files("cifar10", "train", args.data_dir) or not dataset_files("cifar10", "test", args.data_dir):
        parser.error("CIFAR-10 training and test batches not found (--data-dir)")
    if args.epochs < 1 or args.lr <= 0:
        parser.error("--epochs and --lr must be positive")

    import torch

    from resnet_fhe.models.torch_training import write_trained

    model, results, prep = train(args.epochs, args.seed, args.threads, args.augment, args.lr, args.data_dir)
    recipe = {"script": "bench/train_cifar_pixel.py", "dataset": "cifar10", "start": "weights/resnet20.npz",
              "epochs": args.epochs, "augment": args.augment, "lr": args.lr, "seed": args.seed,
              "torch": torch.__version__, "pixel_encrypted_training": True, "test_accuracy_torch": results}
    write_trained(model, (3, 32, 32), recipe, args.out, mean=prep["mean"], std=prep["std"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
