"""Compute time of each part of one streamed bootstrap (keys and diagonals in memory, no reading), the
minimum over repeats: how this folder's lever table was measured. TREE selects the checkout to import
(an older commit's worktree, with its extension built, for the 'before' row).

    OMP_NUM_THREADS=2 [TREE=/path/to/checkout] .venv/bin/python \
        bench/results/native-2026-12-01c/stage_compute_probe.py default-128 16384 4 [DIM1, e.g. 8,4]
"""

import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.environ.get("TREE", str(Path(__file__).resolve().parents[3])))
from resnet_fhe.backends.bootstrapping import MemoryStageKeys, StreamedBootstrap
from resnet_fhe.backends.openfhe_backend import build_context
from resnet_fhe.plan.params import load_preset

params = load_preset(sys.argv[1])
slots, repeats = int(sys.argv[2]), int(sys.argv[3])
if len(sys.argv) > 4:
    dim1 = tuple(int(x) for x in sys.argv[4].split(","))
    field = "streamed_bootstrap_dim1" if hasattr(params, "streamed_bootstrap_dim1") else "bootstrap_dim1"
    params = dataclasses.replace(params, **{field: dim1})
context = build_context(params, library="native")
keys = context.KeyGen()
context.EvalMultKeyGen(keys.secretKey)
stage_keys = MemoryStageKeys(context, params, keys.secretKey, [slots])
bootstrap = StreamedBootstrap(context, params, stage_keys, stream_transforms=False)
bootstrap.prepare(slots)
transforms, stages = bootstrap._prepared[slots]
special = stage_keys.special(slots)
values = np.random.default_rng(0).uniform(-1, 1, slots)
ct = context.Encrypt(keys.publicKey,
                     context.MakeCKKSPackedPlaintext(values, 1, params.multiplicative_depth - 1, None, slots))
best: dict[str, float] = {}
for repeat in range(repeats):
    parts = {}
    started = begun = time.perf_counter()
    x = transforms.Begin(ct, special)
    parts["begin"] = time.perf_counter() - begun
    for stage in range(len(stages)):
        if stage > 0 and transforms.IsCoeffsToSlots(stage - 1) and not transforms.IsCoeffsToSlots(stage):
            begun = time.perf_counter()
            x = transforms.EvalMod(x, special)
            parts["evalmod"] = time.perf_counter() - begun
        begun = time.perf_counter()
        x = transforms.ApplyStage(stage, x, stage_keys.stage(slots, stage), stages[stage])
        parts[f"stage{stage}"] = time.perf_counter() - begun
    begun = time.perf_counter()
    x = transforms.Finish(x, special)
    parts["finish"] = time.perf_counter() - begun
    parts["total"] = time.perf_counter() - started
    parts["stages"] = sum(v for k, v in parts.items() if k.startswith("stage"))
    for name, seconds in parts.items():
        best[name] = min(best.get(name, float("inf")), seconds)
    print(f"repeat {repeat}: " + " ".join(f"{k} {v:.2f}" for k, v in parts.items()), flush=True)
print("stage keys", [len(transforms.StageRotations(stage)) for stage in range(len(stages))])
print("minimum: " + " ".join(f"{k} {v:.2f}" for k, v in best.items()))
decrypted = context.Decrypt(x, keys.secretKey)
decrypted.SetLength(slots)
print(f"error max 2^{np.log2(np.max(np.abs(np.array(decrypted.GetRealPackedValue()) - values))):.2f}")
