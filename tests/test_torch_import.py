"""Importing torch models by tracing (issue 13; needs the `torch` extra: CI runs this file in a venv with
torch's CPU build): the shipped ResNets and small CNNs round-trip exactly, unsupported modules are refused
by name."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_fhe.errors import ModelError
from resnet_fhe.ir import run_graph
from resnet_fhe.ir.graph import Add, PolynomialActivation, ShortcutA
from resnet_fhe.models import load_model, load_weights, random_resnet_weights
from resnet_fhe.models.cifar_resnet import ResNetSpec

torch = pytest.importorskip("torch", reason="torch is an optional extra; install resnet-fhe[torch]")
nn = torch.nn


class Square(nn.Module):
    def forward(self, x):
        return x * x


class Poly(nn.Module):
    """A trainable polynomial activation: the tracer keeps any module with `coefficients` as one layer."""

    def __init__(self, coefficients):
        super().__init__()
        self.coefficients = nn.Parameter(torch.tensor(coefficients))

    def forward(self, x):
        return sum(c * x ** k for k, c in enumerate(self.coefficients))


def tutorial_cnn(activation=Square):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 7, stride=3), activation(), nn.Flatten(), nn.Linear(256, 64), activation(),
                         nn.Linear(64, 10)).eval()


class Functional(nn.Module):
    """The same vocabulary through functions and methods: relu, square, residual add, view, mean."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv1(x)))
        y = y + torch.square(self.conv2(y))
        return self.fc(y.mean((2, 3)).view(y.size(0), -1))


def _images(count, shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (count, *shape))


def _torch_logits(model, images):
    with torch.no_grad():
        return model(torch.tensor(images, dtype=torch.float32)).numpy()


@pytest.mark.parametrize("make", [tutorial_cnn, lambda: tutorial_cnn(lambda: Poly([0.1, 0.5, 0.25])), Functional])
def test_small_cnns_round_trip_through_the_weights_format(make, tmp_path):
    from resnet_fhe.models.torch_import import weights_from_module

    model = make().eval()
    weights_from_module(model, (1, 28, 28), {"dataset": "mnist"}).save(tmp_path / "m.npz")
    graph = load_model(str(tmp_path / "m.npz"))
    images = _images(6, (1, 28, 28))
    np.testing.assert_allclose(run_graph(graph, images), _torch_logits(model, images), rtol=1e-4, atol=1e-4)


def test_square_and_polynomial_modules_become_polynomial_activations():
    from resnet_fhe.models.torch_import import trace_module

    graph = trace_module(tutorial_cnn(lambda: Poly([0.1, 0.5, 0.25])), (1, 28, 28))
    acts = [n for n in graph.nodes if isinstance(n, PolynomialActivation)]
    assert [a.coefficients for a in acts] == [pytest.approx((0.1, 0.5, 0.25))] * 2
    assert all(a.monomial for a in trace_module(tutorial_cnn(), (1, 28, 28)).nodes
               if isinstance(a, PolynomialActivation))


def test_the_shipped_resnet20_traces_to_the_same_function():
    from resnet_fhe.models.torch_import import trace_module
    from resnet_fhe.models.torch_resnet import torch_resnet_from_weights

    weights = load_weights("resnet20")
    mean, std = weights.meta["preprocessing"]["mean"], weights.meta["preprocessing"]["std"]
    model = torch_resnet_from_weights(weights).eval()
    graph = trace_module(model, (3, 32, 32), mean=mean, std=std)
    assert sum(isinstance(n, ShortcutA) for n in graph.nodes) == 2 and sum(isinstance(n, Add) for n in graph.nodes) == 9
    images = _images(4, (3, 32, 32))
    m, s = np.array(mean)[:, None, None], np.array(std)[:, None, None]
    np.testing.assert_allclose(run_graph(graph, images), _torch_logits(model, (images - m) / s), atol=1e-4)
    np.testing.assert_allclose(run_graph(graph, images), run_graph(load_model("resnet20", fold=False), images),
                               atol=1e-9)


def test_a_random_resnet_traces_to_the_same_function():
    from resnet_fhe.models.torch_import import trace_module
    from resnet_fhe.models.torch_resnet import torch_resnet_from_weights

    model = torch_resnet_from_weights(random_resnet_weights(ResNetSpec(depth=8, widths=(4, 8, 16)), seed=5)).eval()
    graph = trace_module(model, (3, 32, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    images = _images(4, (3, 32, 32))
    np.testing.assert_allclose(run_graph(graph, images), _torch_logits(model, (images - 0.5) / 0.25), atol=1e-4)


@pytest.mark.parametrize("module, message", [
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2)), "MaxPool2d"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.Sigmoid()), "Sigmoid"),
    (nn.Sequential(nn.Conv2d(2, 4, 3, groups=2)), "groups"),
    (nn.Sequential(nn.Conv2d(1, 4, 3, dilation=2)), "dilation"),
    (nn.Sequential(nn.Conv2d(1, 4, 3, padding_mode="circular", padding=1)), "zero padding"),
])
def test_unsupported_modules_are_refused_by_name(module, message):
    from resnet_fhe.models.torch_import import trace_module

    channels = 2 if "groups" in message else 1
    with pytest.raises(ModelError, match=message):
        trace_module(module, (channels, 8, 8))


def test_unsupported_functions_are_refused_by_name():
    from resnet_fhe.models.torch_import import trace_module

    class Tanh(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return torch.tanh(self.conv(x))

    with pytest.raises(ModelError, match="tanh"):
        trace_module(Tanh(), (1, 8, 8))


def test_the_import_command_writes_a_loadable_weights_file(tmp_path, capsys):
    from resnet_fhe.cli import main

    model = tutorial_cnn()
    torch.save(model, tmp_path / "model.pt")
    out = tmp_path / "cryptondl.npz"
    assert main(["import", str(tmp_path / "model.pt"), "--input-shape", "1,28,28", "--output", str(out),
                 "--dataset", "mnist"]) == 0
    images = _images(3, (1, 28, 28))
    np.testing.assert_allclose(run_graph(load_model(str(out)), images), _torch_logits(model, images), atol=1e-4)
    torch.save(model.state_dict(), tmp_path / "state.pt")
    assert main(["import", str(tmp_path / "state.pt"), "--input-shape", "1,28,28", "--output", str(out)]) != 0
    assert "not a torch.nn.Module" in capsys.readouterr().err


def _bench_script(name: str):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_neu_chunk_cnn_exports_to_the_same_function():
    """bench/train_neu.py folds the per-chunk average into the first fully connected layer on export."""
    from resnet_fhe.models.torch_import import trace_module

    train_neu = _bench_script("train_neu")
    torch.manual_seed(0)
    model = train_neu.chunk_cnn(torch, channels=4, hidden=8).eval()
    model[1].running_mean.uniform_(-0.2, 0.2)
    graph = trace_module(train_neu.exportable(torch, model), (1, 112, 112))
    images = _images(2, (1, 112, 112))
    np.testing.assert_allclose(run_graph(graph, images), _torch_logits(model, images), rtol=1e-4, atol=1e-4)


def test_the_shipped_relu_chunk_cnn_traces_and_the_jitter_keeps_pixels_in_range():
    """train_neu.patch_cnn is built from layers the tracer takes (it is written as traced); its
    augmentation leaves pixels in [0, 1] and changes the images."""
    from resnet_fhe.models.torch_import import trace_module

    train_neu = _bench_script("train_neu")
    torch.manual_seed(0)
    model = train_neu.patch_cnn(torch).eval()
    images = _images(2, (1, 112, 112))
    np.testing.assert_allclose(run_graph(trace_module(model, (1, 112, 112)), images), _torch_logits(model, images),
                               rtol=1e-4, atol=1e-4)
    batch = torch.rand(8, 1, 112, 112)
    out = train_neu.augment(torch, batch, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert not torch.equal(out, batch)


def test_the_key_invariant_front_gives_every_key_the_same_features_and_traces():
    """train_cifar_pixel.key_invariant_front: a pixel-encrypted image and its plain image give the same
    features (in torch and in the traced IR graph), and different images different ones."""
    from resnet_fhe.imagecrypt import encrypt_batch
    from resnet_fhe.models.torch_import import trace_module

    front = torch.nn.Sequential(_bench_script("train_cifar_pixel").key_invariant_front(torch),
                                torch.nn.Flatten()).eval()  # a traced module ends in a vector
    plain = np.random.default_rng(0).integers(0, 256, (3, 3, 8, 8), dtype=np.uint8)
    encrypted = encrypt_batch(plain, seed=1)
    assert not np.array_equal(plain, encrypted)
    graph = trace_module(front, (3, 8, 8))
    for run in (lambda x: _torch_logits(front, x), lambda x: run_graph(graph, x)):
        np.testing.assert_allclose(run(plain / 255.0), run(encrypted / 255.0), rtol=1e-5, atol=1e-5)
    features = _torch_logits(front, plain / 255.0)
    assert not np.allclose(features[0], features[1])


def test_the_distillation_loss_is_the_label_loss_plus_the_teacher_divergence():
    """train_cifar_pixel.distillation_loss: with label weight 1 it is cross-entropy on the labels; with
    label weight 0 it vanishes when the student gives the teacher's logits and grows as it departs."""
    loss_of = _bench_script("train_cifar_pixel").distillation_loss
    torch.manual_seed(0)
    outputs, teacher = torch.randn(6, 10), torch.randn(6, 10)
    labels, partners = torch.randint(0, 10, (2, 6))
    unmixed = torch.cat([labels[:, None].float(), labels[:, None].float(), torch.ones(6, 1), teacher], 1)
    cross_entropy = torch.nn.functional.cross_entropy
    torch.testing.assert_close(loss_of(torch, 4.0, 1.0)(outputs, unmixed), cross_entropy(outputs, labels))
    share = torch.full((6, 1), 0.25)
    mixed = torch.cat([labels[:, None].float(), partners[:, None].float(), share, teacher], 1)
    torch.testing.assert_close(loss_of(torch, 4.0, 1.0)(outputs, mixed),
                               0.25 * cross_entropy(outputs, labels) + 0.75 * cross_entropy(outputs, partners))
    soft_only = loss_of(torch, 4.0, 0.0)
    assert float(soft_only(teacher, unmixed)) == pytest.approx(0.0, abs=1e-6)
    assert 0 < float(soft_only(0.5 * teacher + 0.5 * outputs, unmixed)) < float(soft_only(outputs, unmixed))


def test_feature_matching_vanishes_for_the_teacher_itself_and_grows_as_the_student_departs():
    """train_cifar_pixel's --features: outputs_of lays the teacher's logits and layer2/layer3 outputs
    out as distillation_loss reads them, so a student that is the teacher pays nothing for the features
    (the loss equals the logits-only loss), a changed student pays more, and asking for features without
    the student's stage outputs is refused."""
    from resnet_fhe.models.torch_resnet import torch_resnet_from_weights
    from resnet_fhe.models.weights_file import load_weights

    script = _bench_script("train_cifar_pixel")
    weights = load_weights("resnet20")
    teacher, student = torch_resnet_from_weights(weights).eval(), torch_resnet_from_weights(weights).eval()
    teacher_stages, _ = script.record_stages(teacher)
    student_stages, handles = script.record_stages(student)
    images = torch.rand(4, 3, 32, 32)
    rows = script.outputs_of(torch, teacher, images, teacher_stages, batch=3)
    assert rows.shape == (4, 10 + 32 * 16 * 16 + 64 * 8 * 8)
    labels = torch.randint(0, 10, (4, 1)).float()
    targets = torch.cat([labels, labels, torch.ones(4, 1), rows], 1)
    with_features = script.distillation_loss(torch, 4.0, 0.1, 1.0, student_stages)
    logits_only = script.distillation_loss(torch, 4.0, 0.1)
    with torch.no_grad():
        same = student(images)
        assert float(with_features(same, targets)) == pytest.approx(float(logits_only(same, targets)), abs=1e-5)
        student.layer2[0].conv1.weight.mul_(1.5)
        changed = student(images)
        assert float(with_features(changed, targets)) > float(logits_only(changed, targets)) + 1e-3
    for handle in handles:
        handle.remove()
    with pytest.raises(ValueError, match="stage outputs"):
        script.distillation_loss(torch, 4.0, 0.1, 1.0)


def test_scratch_reinitialises_every_layer_and_plain_training_refuses_the_invariant_front(capsys):
    """train_cifar_pixel's --scratch: reinitialise changes every convolution, linear layer and batch
    normalisation of the shipped ResNet20 (running statistics back to 0 and 1), so a bound run starts from
    nothing it learnt from 50,000 images; --plain with --invariant is refused before any training."""
    from resnet_fhe.models.torch_resnet import torch_resnet_from_weights
    from resnet_fhe.models.weights_file import load_weights

    script = _bench_script("train_cifar_pixel")
    shipped = torch_resnet_from_weights(load_weights("resnet20"))
    fresh = torch_resnet_from_weights(load_weights("resnet20"))
    torch.manual_seed(0)
    script.reinitialise(torch, fresh)
    before, after = shipped.state_dict(), fresh.state_dict()
    for name, value in after.items():
        if name.endswith("weight") and value.dim() > 1:
            assert not torch.allclose(value, before[name]), name
        elif name.endswith("running_mean") or name.endswith("running_var"):
            assert torch.equal(value, torch.full_like(value, float(name.endswith("var")))), name
    with pytest.raises(SystemExit):
        script.main(["--plain", "--invariant", "--epochs", "1"])
    assert "--plain with --invariant" in capsys.readouterr().err


def test_cutmix_moves_one_box_between_views_alike_and_reports_the_kept_share():
    """train_cifar_pixel.cutmix: about the asked fraction of images is mixed; a mixed image differs from its
    original exactly where it equals its partner, in every stacked view alike, and the share of its own
    pixels kept is what the box left."""
    cutmix = _bench_script("train_cifar_pixel").cutmix
    images = torch.rand(400, 6, 8, 8)
    mixed, partner, kept = cutmix(torch, images, 0.5, torch.Generator().manual_seed(0))
    assert 0.4 < float((kept < 1).float().mean()) < 0.6
    for i in range(len(images)):
        changed = (mixed[i] != images[i]).any(0)
        assert torch.equal(mixed[i][:, changed], images[partner[i]][:, changed])
        assert torch.equal((mixed[i, :3] != images[i, :3]).any(0), (mixed[i, 3:] != images[i, 3:]).any(0))
        if partner[i] != i:
            assert float(kept[i]) == pytest.approx(1 - float(changed.float().mean()))


def test_load_trained_reads_back_what_write_trained_wrote_and_refuses_another_structure(tmp_path):
    """load_trained puts write_trained's traced weights back into a module of the same structure (same
    outputs), and raises ValueError for a module they do not fit."""
    from resnet_fhe.models.torch_training import load_trained, write_trained

    def model():
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                             nn.Linear(64, 3))

    torch.manual_seed(0)
    trained = model()
    trained.train()
    trained(torch.rand(8, 1, 4, 4))  # running statistics away from their initial values
    trained.eval()
    write_trained(trained, (1, 4, 4), {"dataset": "mnist"}, tmp_path / "w.npz")
    loaded = model().eval()
    load_trained(torch, loaded, tmp_path / "w.npz")
    images = torch.rand(5, 1, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), trained(images))
    with pytest.raises(ValueError, match="does not fit"):
        load_trained(torch, nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Flatten(), nn.Linear(64, 3)),
                     tmp_path / "w.npz")


def test_the_training_helpers_fit_and_write_a_model(tmp_path, capsys):
    """train_epochs (the bench scripts' loop) fits a small CNN; write_trained writes weights that compute
    the module and prints the recipe."""
    import json

    from resnet_fhe.models.torch_training import train_epochs, write_trained

    torch.manual_seed(0)
    inputs = torch.rand(64, 1, 8, 8)
    targets = (inputs.mean((1, 2, 3)) > 0.5).long()
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.Flatten(), nn.Linear(18, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    seen = []

    def epoch_data(epoch):
        seen.append(epoch)
        return inputs, targets

    loss = nn.functional.cross_entropy
    with torch.no_grad():
        before = float(loss(model(inputs), targets))
    trained = train_epochs(torch, model, optimizer, schedule, 20, 16, torch.Generator().manual_seed(0), epoch_data,
                           loss)
    assert seen == list(range(20)) and not trained.training
    with torch.no_grad():
        assert float(loss(trained(inputs), targets)) < 0.5 * before
    write_trained(trained, (1, 8, 8), {"dataset": "mnist", "epochs": 20}, tmp_path / "w.npz")
    assert json.loads(capsys.readouterr().out) == {"dataset": "mnist", "epochs": 20}
    images = _images(3, (1, 8, 8))
    np.testing.assert_allclose(run_graph(load_model(str(tmp_path / "w.npz")), images), _torch_logits(trained, images),
                               atol=1e-4)
