import pickle

import numpy as np
import pytest

from resnet_fhe.data import DATA_DIR_ENV, load_cifar10, load_sample
from resnet_fhe.errors import DataError


def test_sample_ships_with_package_and_matches_test_batch(cifar_dir):
    sample = load_sample()
    assert sample.split == "test" and sample.images.dtype == np.uint8
    assert sample.images.shape[1:] == (3, 32, 32) and len(sample) >= 10
    test = load_cifar10("test", cifar_dir)
    assert np.array_equal(sample.images, test.images[: len(sample)])
    assert np.array_equal(sample.labels, test.labels[: len(sample)])


def test_known_first_labels_and_pixels(cifar_dir):
    test = load_cifar10("test", cifar_dir)
    assert len(test) == 10000
    assert test.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert test.images[0, 0, 0, :5].tolist() == [158, 159, 165, 166, 160]


def test_missing_directory_names_the_path(tmp_path):
    with pytest.raises(DataError, match="does-not-exist"):
        load_cifar10("test", tmp_path / "does-not-exist")


def test_missing_batch_file(tmp_path):
    with pytest.raises(DataError, match="no test batch"):
        load_cifar10("test", tmp_path)


def test_environment_variable_selects_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(DataError, match="elsewhere"):
        load_cifar10("test")


@pytest.mark.parametrize("content", [b"not a pickle", pickle.dumps([1, 2, 3]),
                                     pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}),
                                     pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 11]})])
def test_corrupt_batch_is_rejected_with_its_path(tmp_path, content):
    (tmp_path / "test_batch").write_bytes(content)
    with pytest.raises(DataError, match="test_batch"):
        load_cifar10("test", tmp_path)


def test_unknown_split_and_bad_slice(cifar_dir):
    with pytest.raises(DataError, match="unknown split"):
        load_cifar10("validation", cifar_dir)
    with pytest.raises(DataError, match="asked for 20"):
        load_sample().take(20, start=len(load_sample()) - 5)


def test_kmnist_reads_its_authors_npz_files(tmp_path):
    from resnet_fhe.data import load_dataset

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), rng.integers(0, 10, 5).astype(np.uint8)
    np.savez_compressed(tmp_path / "kmnist-test-imgs.npz", arr_0=images)
    np.savez_compressed(tmp_path / "kmnist-test-labels.npz", arr_0=labels)
    data = load_dataset("kmnist", "test", tmp_path)
    assert data.images.shape == (5, 1, 28, 28) and np.array_equal(data.images[:, 0], images)
    assert np.array_equal(data.labels, labels)
    with pytest.raises(DataError, match="train file"):
        load_dataset("kmnist", "train", tmp_path)


def test_mnist_and_fashion_mnist_load_from_the_shared_copy(mnist_data):
    from resnet_fhe.data import load_dataset

    mnist, fashion = load_dataset("mnist", "test"), load_dataset("fashion-mnist", "train")
    assert mnist.images.shape == (10000, 1, 28, 28) and len(fashion) == 60000
    assert mnist.labels[:5].tolist() == [7, 2, 1, 0, 4]  # the first MNIST test labels
    with pytest.raises(DataError, match="unknown data set"):
        load_dataset("emnist")


def test_neu_cls_loads_the_fixed_split_as_the_paper_prepares_it():
    from resnet_fhe.data import dataset_files, image_shape, load_dataset

    if not dataset_files("neu-cls"):
        pytest.skip("NEU-CLS not found")
    test = load_dataset("neu-cls", "test")
    assert test.images.shape == (360, *image_shape("neu-cls")) and test.images.dtype == np.uint8
    assert np.bincount(test.labels).tolist() == [60] * 6
    assert test.images[0].max() == 255 and test.images[0].min() == 0  # equalised
    with pytest.raises(DataError, match="split"):
        load_dataset("neu-cls", "validation")
