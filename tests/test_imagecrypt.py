"""Image transforms of issue 14 (resnet_fhe.imagecrypt): pixel-based encryption and chunk selection."""

import numpy as np
import pytest

from resnet_fhe.errors import InputError
from resnet_fhe.imagecrypt import (
    PixelKey,
    chunk_scores,
    decrypt,
    encrypt,
    encrypt_batch,
    equalize_histogram,
    image_keys,
    select_chunks,
    sobel_magnitude,
)
from resnet_fhe.imagecrypt.pixel import COLOUR_ORDERS


def random_images(count: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, *shape), dtype=np.uint8)


@pytest.mark.parametrize("shape, block", [((3, 32, 32), 1), ((3, 32, 32), 4), ((28, 28), 1), ((1, 28, 28), 7)])
def test_the_key_undoes_the_encryption_and_the_encryption_changes_the_image(shape, block):
    image = random_images(1, shape)[0]
    key = next(image_keys(seed=5, count=1, shape=shape, block=block))
    encrypted = encrypt(image, key)
    assert encrypted.shape == image.shape and encrypted.dtype == np.uint8
    assert np.array_equal(decrypt(encrypted, key), image)
    assert np.mean(encrypted != image) > 0.4  # half the components negated, and most pixels' orders changed


def test_each_component_is_negated_or_kept_and_each_pixel_keeps_its_values():
    """Negative-positive: 255 - p where the key bit is set; colour shuffling only reorders a pixel's
    components, so the sorted (after undoing the negation) components of every pixel are unchanged."""
    image = random_images(1, (3, 16, 16), seed=1)[0]
    key = next(image_keys(seed=2, count=1, shape=image.shape))
    assert key.orders is not None and set(np.unique(key.orders)) <= set(range(6))
    negated_only = encrypt(image, PixelKey(key.flips, np.zeros_like(key.orders)))  # order 0 = identity
    assert np.array_equal(negated_only, np.where(key.flips, 255 - image, image))
    encrypted = encrypt(image, key)
    y, x = 3, 7
    assert list(encrypted[:, y, x]) == [negated_only[c, y, x] for c in COLOUR_ORDERS[key.orders[y, x]]]


def test_keys_are_reproducible_from_the_seed_and_independent_per_image():
    shape = (3, 8, 8)
    first = list(image_keys(seed=11, count=3, shape=shape))
    again = list(image_keys(seed=11, count=5, shape=shape))[:3]  # key i does not depend on the count
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.flips, b.flips) and np.array_equal(a.orders, b.orders)
    assert not np.array_equal(first[0].flips, first[1].flips)
    other = next(image_keys(seed=12, count=1, shape=shape))
    assert not np.array_equal(first[0].flips, other.flips)
    same_twice = np.repeat(random_images(1, shape), 2, axis=0)  # one image twice in a batch
    encrypted = encrypt_batch(same_twice, seed=3)
    assert not np.array_equal(encrypted[0], encrypted[1])
    assert np.array_equal(encrypt_batch(same_twice, seed=3), encrypted)


def test_block_wise_keys_are_constant_on_each_block():
    key = next(image_keys(seed=4, count=1, shape=(3, 8, 8), block=4))
    for rows in (slice(0, 4), slice(4, 8)):
        for cols in (slice(0, 4), slice(4, 8)):
            assert len(np.unique(key.orders[rows, cols])) == 1
            assert all(len(np.unique(key.flips[c, rows, cols])) == 1 for c in range(3))


def test_bad_images_and_keys_are_refused_with_what_was_expected():
    key = next(image_keys(seed=0, count=1, shape=(3, 8, 8)))
    with pytest.raises(InputError, match="uint8"):
        encrypt(np.zeros((3, 8, 8), dtype=np.float32), key)
    with pytest.raises(InputError, match="1 or 3 channels"):
        encrypt(np.zeros((2, 8, 8), dtype=np.uint8), key)
    with pytest.raises(InputError, match=r"key is for images of shape \(3, 8, 8\)"):
        encrypt(np.zeros((3, 4, 4), dtype=np.uint8), key)
    with pytest.raises(InputError, match="must divide"):
        next(image_keys(seed=0, count=1, shape=(3, 10, 10), block=4))


def test_sobel_magnitude_matches_the_kernels_written_out():
    image = random_images(1, (6, 7), seed=8)[0]
    padded = np.pad(image.astype(float), 1, mode="edge")
    kx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    expected = np.empty(image.shape)
    for y in range(image.shape[0]):
        for x in range(image.shape[1]):
            window = padded[y:y + 3, x:x + 3]
            expected[y, x] = np.hypot((window * kx).sum(), (window * kx.T).sum())
    assert np.allclose(sobel_magnitude(image), expected)


def test_only_chunks_with_edges_are_selected():
    """A flat 112 x 112 image with a sharp edge inside one 28 x 28 chunk: that chunk alone scores above
    the paper's threshold of 100."""
    image = np.full((112, 112), 90, dtype=np.uint8)
    image[30:54, 60:70] = 250  # inside the chunk at row 1, column 2
    scores = chunk_scores(image)
    assert scores.shape == (4, 4) and scores[0, 0] == 0
    selected = select_chunks(image)
    assert selected.sum() == 1 and selected[1, 2]
    with pytest.raises(InputError, match="must divide"):
        chunk_scores(np.zeros((100, 100), dtype=np.uint8))


def test_histogram_equalisation_stretches_to_the_full_range_and_keeps_the_order():
    image = np.random.default_rng(9).integers(100, 140, size=(32, 32), dtype=np.uint8)
    equalised = equalize_histogram(image)
    assert equalised.min() == 0 and equalised.max() == 255
    order = np.argsort(image.ravel(), kind="stable")
    assert np.all(np.diff(equalised.ravel()[order].astype(int)) >= 0)  # monotone mapping
    assert np.array_equal(equalize_histogram(np.full((4, 4), 7, dtype=np.uint8)), np.full((4, 4), 7))


@pytest.mark.parametrize("channels", [1, 3])
def test_the_smoothness_attack_recovers_a_smooth_image_up_to_one_global_key(channels):
    """Where neighbouring pixels differ by little and no component is near another's level or negation, the key of every
    pixel is the one that continues its neighbours: the attack must recover the image exactly (so its poor
    result on real images, bench/pixel_attack.py, is the scheme's doing, not the attack's)."""
    from resnet_fhe.imagecrypt.attacks import flat_psnr, recovered_fraction, recovery_psnr, smoothness_attack

    ramp = np.add.outer(np.arange(16), np.arange(16))  # 0..30, changing by 1 between neighbours
    levels = [5, 50, 95] if channels == 3 else [20]  # no two components (or negations) ever within 30
    plain = np.stack([level + ramp for level in levels]).astype(np.uint8)[None]
    encrypted = encrypt_batch(plain, seed=6)
    recovered = smoothness_attack(encrypted)
    assert recovered_fraction(plain, recovered)[0] == 1.0
    assert recovery_psnr(plain, recovered)[0] > 100 > flat_psnr(plain)[0]
    assert recovered_fraction(plain, encrypted)[0] < 0.6  # the best global key fits about half the pixels


def test_the_cli_encrypts_a_batch_file_and_refuses_what_it_cannot_use(tmp_path, capsys):
    from resnet_fhe.cli import main

    images = random_images(3, (3, 8, 8), seed=2)
    np.save(tmp_path / "plain.npy", images)
    assert main(["imagecrypt", "--input", str(tmp_path / "plain.npy"), "--output", str(tmp_path / "enc.npy"),
                 "--seed", "9"]) == 0
    assert np.array_equal(np.load(tmp_path / "enc.npy"), encrypt_batch(images, seed=9))
    assert main(["imagecrypt", "--input", str(tmp_path / "plain.npy"), "--output", str(tmp_path / "fresh.npy")]) == 0
    assert not np.array_equal(np.load(tmp_path / "fresh.npy"), np.load(tmp_path / "enc.npy"))  # keys from the OS
    np.save(tmp_path / "floats.npy", images.astype(np.float32))
    assert main(["imagecrypt", "--input", str(tmp_path / "floats.npy"), "--output", str(tmp_path / "x.npy")]) == 2
    assert main(["imagecrypt", "--input", str(tmp_path / "plain.npy"), "--output", str(tmp_path / "plain.npy")]) == 2
    assert "uint8" in capsys.readouterr().err
    assert not (tmp_path / "x.npy").exists()


def test_bilinear_resizing_keeps_flat_images_and_ramps_and_chunks_tile_the_image():
    from resnet_fhe.imagecrypt import chunk_grid, resize_bilinear

    assert np.array_equal(resize_bilinear(np.full((200, 200), 77, dtype=np.uint8), 112, 112), np.full((112, 112), 77))
    ramp = np.tile(np.arange(0, 200, 2, dtype=np.float64), (4, 1))  # 4 x 100, slope 2 per pixel
    halved = resize_bilinear(ramp, 4, 50)
    assert np.allclose(np.diff(halved[0]), 4.0)  # slope 4 per output pixel, pixel centres aligned
    assert np.isclose(halved[0, 0], 1.0)  # the centre of output pixel 0 is input coordinate 0.5
    image = np.arange(112 * 112).reshape(112, 112)
    grid = chunk_grid(image)
    assert grid.shape == (4, 4, 28, 28) and np.array_equal(grid[1, 2], image[28:56, 56:84])
