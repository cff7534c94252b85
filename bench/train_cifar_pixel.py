"""Fine-tunes the shipped ResNet20 on pixel-encrypted CIFAR-10 images (issue 14; torch extra, CPU) and writes it
in the project's weights format through the torch tracer.

Pixel-based encryption (resnet_fhe.imagecrypt: keyed negative-positive transform of every colour component
and keyed shuffle of each pixel's components, Sirichotedumrong, Kinoshita and Kiya 2019), a new independent
key for every image in every epoch, as the paper trains: no key is managed. The model starts from the
shipped weights (plain images, 91.73 %) and is trained on the workspace's training batches only (20,000
images); `--augment` adds the usual random crops (4-pixel zero padding) and mirrors, applied to the
encrypted images (the encrypted-domain augmentation the paper describes: a crop or mirror of an encrypted
image is an encryption of the cropped or mirrored image under a moved key). SGD with momentum and a
one-cycle schedule. Unless `--holdout` is given, the test set is read once, at the end: accuracy on its
images encrypted with keys no training epoch used, and on its plain images.

`--invariant` puts key_invariant_front before the ResNet: features of each pixel that every key leaves
unchanged, so the network classifies an encrypted image exactly as its plain image and needs no
invariance learnt (83.81 % after 15 epochs, against 69.90 % for 10 epochs on the encrypted pixels
directly). `--distill` adds the shipped plain ResNet20 as a teacher: it sees the plain crop of each
encrypted training image, and the student learns its soft classes as well as the label. `--cutmix F`
pastes a box of another image into a fraction F of each epoch's images (encrypted and plain views alike;
the teacher labels the mixed image), `--features W` also asks the student's layer2 and layer3 outputs to
match the teacher's (weight W), and `--init` continues from weights this script wrote. `--holdout N`
keeps the last N training images out of training and reports on them, for choosing a recipe without
reading the test set, and `--train-images N` trains on the first N only. `--scratch` starts from random
weights instead of the shipped ones and `--plain` trains on the plain images (no keys): together they
measure what the scheme's information loss costs at equal data and recipe, with no 50,000-image
pretraining on either side (the bound runs below).

    PYTHONPATH=. .venv-torch/bin/python bench/train_cifar_pixel.py --invariant --augment --distill --epochs 30 \
        --threads 2 --out build/pixel-resnet20-stage1.npz                                  # 85.33 %
    PYTHONPATH=. .venv-torch/bin/python bench/train_cifar_pixel.py --invariant --augment --distill --cutmix 0.5 \
        --init build/pixel-resnet20-stage1.npz --epochs 32 --lr 0.02 --threads 2 \
        --out weights/pixel-resnet20.npz                                                   # 85.91 %

A fifth-session experiment, not shipped (+0.12 pp only; bench/results/privacy-2026-12-02-e/):

    PYTHONPATH=. .venv-torch/bin/python bench/train_cifar_pixel.py --invariant --augment --distill --cutmix 0.5 \
        --features 1 --init weights/pixel-resnet20.npz --epochs 34 --lr 0.02 --threads 2 \
        --out build/pixel-resnet20-stage3.npz                                              # 86.03 %

The sixth session's bound runs (bench/results/privacy-2026-12-02-f/, paired by bench/pixel_bound.py): the
same ResNet20 and recipe from random weights, on plain images and behind the key-invariant front, on the
first N training images (N = 5,000, 10,000 and all 20,000; at 20,000 also with --seed 1):

    PYTHONPATH=. .venv-torch/bin/python bench/train_cifar_pixel.py --scratch --plain --augment --epochs 20 \
        --lr 0.1 --train-images N --threads 2 --out build/scratch-plain-N.npz
    PYTHONPATH=. .venv-torch/bin/python bench/train_cifar_pixel.py --scratch --invariant --augment --epochs 20 \
        --lr 0.1 --train-images N --threads 2 --out build/scratch-invariant-N.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def encrypted(images: np.ndarray, seed: int) -> np.ndarray:
    from resnet_fhe.imagecrypt import encrypt_batch

    return encrypt_batch(images, seed=seed)


def key_invariant_front(torch):
    """Three features per pixel that no key changes: with u_i = (c_i - 1/2)^2 for the pixel's components
    c_i in [0, 1], the negative-positive transform (c -> 1 - c) leaves each u_i and the shuffle their sum,
    so sum_i P(s_k * 2(c_i - 1/2)) with the even P(z) = z^2 + z^4 + z^6 at three scales s_k (a
    Vandermonde mix of the power sums of u, which fix the pixel's multiset of u's) is the same for an
    image under every key: the network never has to learn the keys away. A 1 x 1 convolution (3 -> 9,
    fixed), the polynomial, a 1 x 1 sum (9 -> 3, fixed) and a batch normalisation: layers the tracer and
    the IR take, evaluable under CKKS like the grey CNNs' 4(x - 1/2)^2."""
    nn = torch.nn

    class EvenPolynomial(nn.Module):
        coefficients = (0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0)

        def forward(self, x):
            z = x * x
            return z + z * z + z * z * z

    scales = torch.tensor([1.0, 0.75, 0.5])
    spread = nn.Conv2d(3, 9, 1)
    gather = nn.Conv2d(9, 3, 1, bias=False)
    with torch.no_grad():
        spread.weight.zero_()
        gather.weight.zero_()
        for k, scale in enumerate(scales):
            for i in range(3):
                spread.weight[3 * k + i, i] = 2 * scale
                gather.weight[k, 3 * k + i] = 1.0
        spread.bias.copy_(-scales.repeat_interleave(3))
    for layer in (spread, gather):
        layer.weight.requires_grad_(False)
    spread.bias.requires_grad_(False)
    return nn.Sequential(spread, EvenPolynomial(), gather, nn.BatchNorm2d(3))


def reinitialise(torch, model) -> None:
    """Gives every layer of `model` that has parameters its fresh random initialisation (torch's default,
    as a new model gets) and every batch normalisation fresh running statistics: --scratch."""
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.BatchNorm2d)):
            module.reset_parameters()


def augment(torch, images, generator):
    """Random 32 x 32 crops of the 4-pixel zero-padded images and random mirrors, per image."""
    n = len(images)
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    dy, dx = torch.randint(0, 9, (2, n), generator=generator).tolist()
    cropped = torch.stack([padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32] for i in range(n)])
    mirror = torch.rand(n, generator=generator) < 0.5
    return torch.where(mirror[:, None, None, None], cropped.flip(3), cropped)


def cutmix(torch, images, fraction: float, generator):
    """CutMix (Yun et al. 2019) on `fraction` of the images: a box of uniformly drawn area, at a uniform
    place, is copied from another image of the batch (the same box at the same place). Returns the mixed
    images, each image's partner and the share of its own pixels kept (1 where unmixed). Pixel
    encryption keys every pixel on its own, so the box of an encrypted image is an encryption of the plain
    box: mixing the encrypted and plain views alike (stacked in `images`) keeps them one image."""
    n, _, height, width = images.shape
    mixed = (torch.rand(n, generator=generator) < fraction).tolist()
    partner = torch.randperm(n, generator=generator)
    side = torch.rand(n, generator=generator).sqrt()
    corner = torch.rand(2, n, generator=generator)
    out, kept = images.clone(), torch.ones(n)
    for i in (i for i in range(n) if mixed[i]):
        box_h, box_w = round(float(side[i]) * height), round(float(side[i]) * width)
        y, x = int(corner[0, i] * (height - box_h + 1)), int(corner[1, i] * (width - box_w + 1))
        out[i, :, y:y + box_h, x:x + box_w] = images[partner[i], :, y:y + box_h, x:x + box_w]
        kept[i] = 1 - box_h * box_w / (height * width)
    return out, partner, kept


# The ResNet stages whose outputs --features matches: layer1 (32 x 32) still describes the pixels, whose
# brightness the scheme destroys, so only the two deeper stages are asked of the student.
FEATURE_STAGES = ("layer2", "layer3")


def record_stages(resnet, stages=FEATURE_STAGES) -> tuple[dict, list]:
    """Forward hooks that keep the latest output of each of `resnet`'s `stages` in the returned dict;
    the handles come back too, to remove the hooks once training is over."""
    outputs: dict = {}

    def keep(name):
        def hook(module, inputs, output):
            outputs[name] = output
        return hook

    handles = [getattr(resnet, name).register_forward_hook(keep(name)) for name in stages]
    return outputs, handles


def outputs_of(torch, model, images, stages: dict | None = None, batch: int = 500):
    """`model`'s logits for `images` (already normalised), in eval mode, without gradients, and, when
    `stages` (record_stages' dict on `model`) is given, its stage outputs after them, flattened into one
    row per image: the teacher's targets for distillation_loss."""
    model.eval()
    rows = []
    with torch.no_grad():
        for first in range(0, len(images), batch):
            parts = [model(images[first:first + batch])]
            if stages is not None:
                parts += [stages[name].flatten(1) for name in FEATURE_STAGES]
            rows.append(torch.cat(parts, 1))
    return torch.cat(rows)


def accuracy(torch, model, images: np.ndarray, labels: np.ndarray, mean, std) -> float:
    inputs = (torch.from_numpy(images.astype(np.float32) / 255.0) - mean) / std
    return float((outputs_of(torch, model, inputs).argmax(1).numpy() == labels).mean())


# distillation_loss's target rows: label, CutMix partner's label, share of the own label, then the
# teacher's ten logits, then (with --features) its stage outputs.
LABEL_COLUMNS = 3
TEACHER_LOGITS = slice(LABEL_COLUMNS, LABEL_COLUMNS + 10)


def distillation_loss(torch, temperature: float, label_weight: float, feature_weight: float = 0.0,
                      student_stages: dict | None = None):
    """Knowledge distillation (Hinton et al. 2015): targets are (label, partner's label, share of the own
    label, teacher's ten logits[, teacher's stage outputs]) rows (the partner is CutMix's; an unmixed image
    is its own partner at share 1); the loss is label_weight x the share-weighted cross-entropy on the two
    labels plus (1 - label_weight) x T^2 x KL(teacher || student) at temperature T. The teacher's soft
    classes carry what 20,000 labels alone do not (which wrong classes an image resembles), the usual
    remedy when a student learns from few images.

    With `feature_weight` > 0, `student_stages` (record_stages' dict on the student) must hold the
    student's FEATURE_STAGES outputs of the same forward pass, and feature_weight x the sum over those
    stages of the squared error to the teacher's, relative to the teacher's mean square, is added (hint
    learning, Romero et al. 2015): the student starts as the teacher, so its stages are the teacher's
    stages, and thousands of numbers per image say more than ten logits."""
    functional = torch.nn.functional
    if feature_weight and student_stages is None:
        raise ValueError("feature distillation needs the student's stage outputs (record_stages)")

    def loss(outputs, targets):
        labels, partners, share = targets[:, 0].long(), targets[:, 1].long(), targets[:, 2]
        teacher = targets[:, TEACHER_LOGITS]
        soft = functional.kl_div(functional.log_softmax(outputs / temperature, 1),
                                 functional.softmax(teacher / temperature, 1), reduction="batchmean")
        hard = (share * functional.cross_entropy(outputs, labels, reduction="none")
                + (1 - share) * functional.cross_entropy(outputs, partners, reduction="none")).mean()
        total = label_weight * hard + (1 - label_weight) * temperature ** 2 * soft
        if feature_weight:
            first = TEACHER_LOGITS.stop
            for name in FEATURE_STAGES:
                student = student_stages[name].flatten(1)
                target = targets[:, first:first + student.shape[1]]
                first += student.shape[1]
                total = total + feature_weight * ((student - target) ** 2).mean() / (target ** 2).mean()
        return total

    return loss


def train(epochs: int, seed: int, threads: int, augment_images: bool, lr: float, invariant: bool,
          distill: bool, holdout: int, data_dir, init: Path | None = None, cutmix_fraction: float = 0.0,
          feature_weight: float = 0.0, scratch: bool = False, plain_training: bool = False,
          train_images_limit: int | None = None) -> tuple:
    if (cutmix_fraction or feature_weight) and not distill:
        raise ValueError("CutMix and feature matching need distillation: the teacher gives the mixed images' "
                         "classes and the stage outputs")
    if plain_training and invariant:
        raise ValueError("the key-invariant front gives plain and encrypted images the same features: "
                         "--plain with --invariant would repeat the encrypted run")
    import torch

    from resnet_fhe.data import load_dataset
    from resnet_fhe.models.torch_resnet import torch_resnet_from_weights
    from resnet_fhe.models.torch_training import load_trained, train_epochs
    from resnet_fhe.models.weights_file import load_weights

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    weights = load_weights("resnet20")
    prep = weights.meta["preprocessing"]
    plain_mean = torch.tensor(prep["mean"], dtype=torch.float32)[:, None, None]
    plain_std = torch.tensor(prep["std"], dtype=torch.float32)[:, None, None]
    mean, std = plain_mean, plain_std
    model = torch_resnet_from_weights(weights)
    if scratch:
        reinitialise(torch, model)
    teacher = torch_resnet_from_weights(weights).eval() if distill else None
    student_stages, hooks = record_stages(model) if feature_weight else ({}, [])
    teacher_stages, teacher_hooks = record_stages(teacher) if feature_weight else (None, [])
    if invariant:  # the front end replaces the input normalisation
        model = torch.nn.Sequential(key_invariant_front(torch), model)
        mean, std = torch.zeros_like(mean), torch.ones_like(std)
        prep = {}
    if init is not None:
        load_trained(torch, model, init)
    data = load_dataset("cifar10", "train", data_dir)
    if holdout >= len(data.labels):
        raise ValueError(f"--holdout {holdout} leaves none of the {len(data.labels)} training images")
    kept = len(data.labels) - holdout
    used = kept if train_images_limit is None else min(kept, train_images_limit)
    train_images, train_labels = data.images[:used], data.labels[:used]
    labels = torch.from_numpy(train_labels)
    batch = 128
    steps = epochs * (-(-used // batch))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4, nesterov=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.15)
    generator = torch.Generator().manual_seed(seed)
    plain = torch.from_numpy(train_images.astype(np.float32) / 255.0)

    def epoch_data(epoch: int) -> tuple:
        """This epoch's view: new keys and, with augmentation, one crop and mirror per image and CutMix
        boxes, drawn once for the encrypted image and its plain image alike (the teacher sees the plain
        view)."""
        images = plain if plain_training else torch.from_numpy(
            encrypted(train_images, seed=1000 * seed + epoch).astype(np.float32) / 255.0)
        views = torch.cat([images, plain], 1)
        if augment_images:
            views = augment(torch, views, generator)
        partners, share = labels, torch.ones(len(labels))
        if cutmix_fraction:
            views, partner, share = cutmix(torch, views, cutmix_fraction, generator)
            partners = labels[partner]
        images, plain_view = views.split(3, 1)
        if teacher is None:
            return (images - mean) / std, labels
        soft = outputs_of(torch, teacher, (plain_view - plain_mean) / plain_std, teacher_stages)
        return (images - mean) / std, torch.cat([labels[:, None].float(), partners[:, None].float(),
                                                  share[:, None], soft], 1)

    loss = (distillation_loss(torch, temperature=4.0, label_weight=0.1, feature_weight=feature_weight,
                              student_stages=student_stages) if distill
            else torch.nn.functional.cross_entropy)
    train_epochs(torch, model, optimizer, schedule, epochs, batch, generator, epoch_data, loss)
    for hook in hooks + teacher_hooks:
        hook.remove()
    if holdout:  # model selection: the test set stays unread
        eval_images, eval_labels = data.images[kept:], data.labels[kept:]
    else:
        test = load_dataset("cifar10", "test", data_dir)
        eval_images, eval_labels = test.images, test.labels
    results = {"encrypted_images": accuracy(torch, model, encrypted(eval_images, seed=10**6 + seed), eval_labels,
                                            mean, std),
               "plain_images": accuracy(torch, model, eval_images, eval_labels, mean, std)}
    return model.eval(), results, prep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--augment", action="store_true", help="random crops and mirrors of the encrypted images")
    parser.add_argument("--invariant", action="store_true",
                        help="a key-invariant polynomial front end before the ResNet (key_invariant_front)")
    parser.add_argument("--distill", action="store_true",
                        help="learn the shipped plain ResNet20's soft classes on the same crops (distillation_loss)")
    parser.add_argument("--cutmix", type=float, default=0.0, metavar="FRACTION",
                        help="CutMix this fraction of each epoch's images (needs --distill: the teacher labels "
                             "the mixed images)")
    parser.add_argument("--features", type=float, default=0.0, metavar="WEIGHT",
                        help="also match the teacher's layer2 and layer3 outputs with this weight (needs "
                             "--distill; distillation_loss)")
    parser.add_argument("--init", type=Path, default=None,
                        help="continue from weights this script wrote (with the same --invariant)")
    parser.add_argument("--scratch", action="store_true",
                        help="start from random weights, not the shipped plain ResNet20 (reinitialise)")
    parser.add_argument("--plain", action="store_true",
                        help="train on the plain images, without keys: the control for the encrypted runs")
    parser.add_argument("--train-images", type=int, default=None, metavar="N",
                        help="train on the first N training images only (how a gap changes with the data)")
    parser.add_argument("--holdout", type=int, default=0,
                        help="hold out the last N training images and report accuracy on them, not on the test set")
    parser.add_argument("--lr", type=float, default=0.05, help="peak learning rate (one cycle)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding the CIFAR-10 batches")
    parser.add_argument("--out", type=Path, default=None, help="weights file to write (.npz)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.lr <= 0:
        parser.error("--epochs and --lr must be positive")
    if args.holdout < 0:
        parser.error("--holdout must be at least 0")
    if args.train_images is not None and args.train_images < 1:
        parser.error("--train-images must be positive")
    if not 0 <= args.cutmix <= 1 or (args.cutmix and not args.distill):
        parser.error("--cutmix takes a fraction in [0, 1] and needs --distill")
    if args.features < 0 or (args.features and not args.distill):
        parser.error("--features takes a weight >= 0 and needs --distill")
    if args.init is not None and not args.init.is_file():
        parser.error(f"--init {args.init}: no such file")
    if args.plain and args.invariant:
        parser.error("--plain with --invariant: the front gives plain and encrypted images the same features")
    if args.scratch and args.init is not None:
        parser.error("--scratch and --init both choose the starting weights: give one")
    from resnet_fhe.data import dataset_files

    if not dataset_files("cifar10", "train", args.data_dir) or not dataset_files("cifar10", "test", args.data_dir):
        parser.error("CIFAR-10 training and test batches not found (--data-dir)")

    import torch

    from resnet_fhe.models.torch_training import write_trained

    model, results, prep = train(args.epochs, args.seed, args.threads, args.augment, args.lr,
                                   args.invariant, args.distill, args.holdout, args.data_dir, args.init, args.cutmix,
                                   args.features, args.scratch, args.plain, args.train_images)
    recipe = {"script": "bench/train_cifar_pixel.py", "dataset": "cifar10",
              "start": str(args.init) if args.init else "random" if args.scratch else "weights/resnet20.npz",
              "epochs": args.epochs, "augment": args.augment, "invariant": args.invariant, "distill": args.distill,
              "cutmix": args.cutmix, "features": args.features, "holdout": args.holdout,
              "train_images": args.train_images, "lr": args.lr,
              "seed": args.seed,
              "torch": torch.__version__, "pixel_encrypted_training": not args.plain,
              ("validation_accuracy_torch" if args.holdout else "test_accuracy_torch"): results}
    write_trained(model, (3, 32, 32), recipe, args.out, mean=prep.get("mean"), std=prep.get("std"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
