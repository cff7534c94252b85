"""pipeline_timing with each streamed bootstrap's phases timed (read wait, compute)."""
import sys, time, runpy
sys.path.insert(0, "/work/main")
from resnet_fhe.backends import bootstrapping as b
from concurrent.futures import ThreadPoolExecutor
def bootstrap_many(self, cts):
    import os; self.read_ahead = os.environ.get("READ_AHEAD", "1") == "1"
    slots = cts[0].GetSlots(); t0 = time.perf_counter(); self.prepare(slots); log = [f"prep {time.perf_counter()-t0:.2f}"]
    transforms, stages = self._prepared[slots]
    t = time.perf_counter(); special = self.keys.special(slots); log.append(f"special {time.perf_counter()-t:.2f}")
    def read(stage):
        t = time.perf_counter(); r = self.keys.stage(slots, stage), self._diagonals(stages[stage]); return r, time.perf_counter() - t
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(read, 0) if self.read_ahead else None
        t = time.perf_counter(); cts = [transforms.Begin(ct, special) for ct in cts]; log.append(f"begin {time.perf_counter()-t:.2f}")
        for stage in range(len(stages)):
            if stage > 0 and transforms.IsCoeffsToSlots(stage - 1) and not transforms.IsCoeffsToSlots(stage):
                t = time.perf_counter(); cts = [transforms.EvalMod(ct, special) for ct in cts]; log.append(f"mod {time.perf_counter()-t:.2f}")
            t = time.perf_counter(); (keys, diagonals), tr = pending.result() if pending is not None else read(stage); w = time.perf_counter() - t
            pending = reader.submit(read, stage + 1) if self.read_ahead and stage + 1 < len(stages) else None
            t = time.perf_counter(); cts = [transforms.ApplyStage(stage, ct, keys, diagonals) for ct in cts]
            log.append(f"s{stage} read {tr:.2f} wait {w:.2f} apply {time.perf_counter()-t:.2f}")
            t = time.perf_counter(); del keys, diagonals; log.append(f"free {time.perf_counter()-t:.2f}")
    t = time.perf_counter(); r = [transforms.Finish(ct, special) for ct in cts]; log.append(f"finish {time.perf_counter()-t:.2f}")
    print("  BOOT " + "; ".join(log) + f"; total {time.perf_counter()-t0:.2f}", flush=True)
    return r
b.StreamedBootstrap.bootstrap_many = bootstrap_many
sys.argv = ["pipeline_timing.py"] + sys.argv[1:]
runpy.run_path("/work/main/bench/pipeline_timing.py", run_name="__main__")
