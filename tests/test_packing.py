"""How many images a query packs (compiler/packing.py): the planner's choice, its limits and its reasons."""

import pytest

from resnet_fhe.compiler.packing import packing_limit, plan_for_batch
from resnet_fhe.errors import CompileError
from resnet_fhe.ir import fold_batchnorm
from resnet_fhe.models import ResNetSpec, build_cifar_resnet, load_model, random_resnet_weights
from resnet_fhe.plan.params import load_preset
from tests.helpers import compile_for_test, toy_params

PARAMS = toy_params(1 << 12)  # 2,048 slots


def _graph():
    spec = ResNetSpec(depth=8, widths=(2, 4, 8), input_shape=(1, 8, 8))
    return fold_batchnorm(build_cifar_resnet(random_resnet_weights(spec, seed=3), fold_normalization=True))


def _compile(graph, compiled: list[int]):
    def compile_with(images_per_query: int):
        compiled.append(images_per_query)
        return compile_for_test(graph, PARAMS, relu_error=0.5, images_per_query=images_per_query)
    return compile_with


def test_resnet20_packs_up_to_eight_images_at_the_128_bit_preset():
    # Stage 3 holds 64 channels of 8x8 = 4,096 slots per image: 8 fill the ring's 32,768.
    assert packing_limit(load_model("resnet20"), load_preset("default-128")) == 8


def test_the_planner_takes_the_smallest_power_of_two_holding_the_batch_up_to_the_limit():
    graph = _graph()
    # Stage 3 (8 channels of 2x2) would allow 2048 / 32 = 64, but the input's 8x8 block must fit B times.
    limit = packing_limit(graph, PARAMS)
    assert limit == 2048 // 64
    compiled: list[int] = []
    choice = plan_for_batch(graph, PARAMS, 3, 100.0, _compile(graph, compiled))
    assert (choice.images_per_query, choice.queries, compiled) == (4, 1, [4])
    assert choice.plan.images_per_query == 4 and "holding 3" in choice.reason
    choice = plan_for_batch(graph, PARAMS, 1000, 100.0, _compile(graph, compiled))
    assert (choice.images_per_query, choice.queries) == (limit, -(-1000 // limit)) and "fill every" in choice.reason


def test_the_planner_halves_the_packing_until_the_estimate_fits_the_budget():
    graph = _graph()
    compiled: list[int] = []
    single = plan_for_batch(graph, PARAMS, 1, 100.0, _compile(graph, compiled)).estimated_peak_gb
    choice = plan_for_batch(graph, PARAMS, 4, single, _compile(graph, compiled))  # only B = 1 fits
    assert compiled[1:] == [4, 2, 1] and choice.images_per_query == 1 and choice.queries == 4
    assert "exceeds" in choice.reason


def test_an_asked_packing_must_be_a_power_of_two_within_the_limit():
    graph = _graph()
    for bad in (3, 0, 128):
        with pytest.raises(CompileError, match="power of two"):
            plan_for_batch(graph, PARAMS, 4, 100.0, _compile(graph, []), images_per_query=bad)
    choice = plan_for_batch(graph, PARAMS, 5, 100.0, _compile(graph, []), images_per_query=2)
    assert (choice.images_per_query, choice.queries, choice.reason.endswith("(as asked)")) == (2, 3, True)
