"""bench/pipeline_timing.py with each streamed bootstrap's parts timed: the probe behind this folder's logs.

READ_AHEAD=1 reads the next stage's keys and diagonals on a thread while a stage computes (the way
resnet-fhe bootstrapped before this folder's measurements), READ_AHEAD=0 reads each stage when it starts.

    READ_AHEAD=0 OMP_NUM_THREADS=2 .venv/bin/python bench/results/native-2026-12-01c/pipeline_read_ahead_probe.py \
        --store STORE --ops 22
"""

import os
import runpy
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from resnet_fhe.backends import bootstrapping  # noqa: E402


def timed_bootstrap_many(self, cts):
    read_ahead = os.environ.get("READ_AHEAD", "1") == "1"
    slots = cts[0].GetSlots()
    started = time.perf_counter()
    self.prepare(slots)
    log = [f"prep {time.perf_counter() - started:.2f}"]
    transforms, stages = self._prepared[slots]
    special = self.keys.special(slots)

    def read(stage):
        begun = time.perf_counter()
        read_now = self.keys.stage(slots, stage), self._diagonals(stages[stage])
        return read_now, time.perf_counter() - begun

    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(read, 0) if read_ahead else None
        begun = time.perf_counter()
        cts = [transforms.Begin(ct, special) for ct in cts]
        log.append(f"begin {time.perf_counter() - begun:.2f}")
        for stage in range(len(stages)):
            if stage > 0 and transforms.IsCoeffsToSlots(stage - 1) and not transforms.IsCoeffsToSlots(stage):
                begun = time.perf_counter()
                cts = [transforms.EvalMod(ct, special) for ct in cts]
                log.append(f"mod {time.perf_counter() - begun:.2f}")
            begun = time.perf_counter()
            (keys, diagonals), reading = pending.result() if pending is not None else read(stage)
            waited = time.perf_counter() - begun
            pending = reader.submit(read, stage + 1) if read_ahead and stage + 1 < len(stages) else None
            begun = time.perf_counter()
            cts = [transforms.ApplyStage(stage, ct, keys, diagonals) for ct in cts]
            log.append(f"s{stage} read {reading:.2f} wait {waited:.2f} apply {time.perf_counter() - begun:.2f}")
            del keys, diagonals
    begun = time.perf_counter()
    result = [transforms.Finish(ct, special) for ct in cts]
    log.append(f"finish {time.perf_counter() - begun:.2f}")
    print("  BOOT " + "; ".join(log) + f"; total {time.perf_counter() - started:.2f}", flush=True)
    return result


bootstrapping.StreamedBootstrap.bootstrap_many = timed_bootstrap_many
sys.argv = ["pipeline_timing.py", *sys.argv[1:]]
runpy.run_path(str(ROOT / "bench" / "pipeline_timing.py"), run_name="__main__")
