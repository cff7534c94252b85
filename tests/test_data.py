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
