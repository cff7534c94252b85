"""Measures resident memory per layer and stops a run that would exceed its budget.

A background thread samples the process's RSS (psutil) every few milliseconds, so short peaks inside a
layer are seen, not only the values at layer boundaries. The guard acts at op boundaries: a native
OpenFHE call cannot be interrupted, so the guard raises before the next op once the sampled peak has
crossed the budget, and the pre-run check refuses plans whose estimate cannot fit at all.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import asdict, dataclass, field

import psutil

from resnet_fhe.errors import ResnetFheError

GB = 1e9


class BudgetExceededError(ResnetFheError):
    """The plan's estimate or the measured memory crossed the memory budget."""


class RssSampler:
    """Peak resident set size of this process, sampled in a daemon thread."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.process = psutil.Process()
        self.peak = self.current()
        self._window_peak = self.peak
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def current(self) -> int:
        return self.process.memory_info().rss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            rss = self.current()
            self.peak = max(self.peak, rss)
            self._window_peak = max(self._window_peak, rss)

    def start_window(self) -> int:
        """Starts a new measurement window (one layer); returns the RSS now."""
        rss = self.current()
        self._window_peak = rss
        return rss

    def window_peak(self) -> int:
        self._window_peak = max(self._window_peak, self.current())
        self.peak = max(self.peak, self._window_peak)
        return self._window_peak

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class LayerProfile:
    layer: str
    seconds: float
    level_in: int
    level_out: int
    bootstraps: int
    rss_start_gb: float
    rss_end_gb: float
    rss_peak_gb: float
    key_load_seconds: float = 0.0  # part of `seconds` spent loading this layer's evaluation keys

    def to_dict(self) -> dict:
        return asdict(self)


def check_estimate(estimated_gb: float, budget_gb: float, what: str) -> None:
    """Refuses before anything runs when the memory model says the plan cannot fit."""
    if estimated_gb > budget_gb:
        raise BudgetExceededError(
            f"{what} is estimated to need {estimated_gb:.2f} GB at its largest phase, over the "
            f"{budget_gb:.2f} GB budget: raise --budget-gb or choose a smaller preset"
        )


@dataclass
class MemoryGuard:
    """Call `begin(layer)` before each op and `end(op)` after it; profiles accumulate per layer."""

    sampler: RssSampler
    budget_gb: float
    progress: bool = False  # one stderr line per finished layer, for long encrypted runs
    profiles: list[LayerProfile] = field(default_factory=list)
    _started: float = 0.0
    _rss_start: int = 0
    _key_seconds: float = 0.0
    _reported: int = 0  # profiles already printed as progress

    def begin(self, layer: str) -> None:
        peak = self.sampler.window_peak() if self.profiles else self.sampler.current()
        if peak > self.budget_gb * GB:
            raise BudgetExceededError(
                f"memory reached {peak / GB:.2f} GB (budget {self.budget_gb:.2f} GB) before layer {layer}; "
                f"stopped cleanly after {self.profiles[-1].layer if self.profiles else 'start'}"
            )
        if not self.profiles or self.profiles[-1].layer != layer:
            self.finish()
            self._started = time.perf_counter()
            self._rss_start = self.sampler.start_window()
            self._key_seconds = 0.0

    def restore(self, profiles: list[dict]) -> None:
        """Takes over the profile of the layers a checkpointed earlier run finished (not reported again)."""
        self.profiles = [LayerProfile(**p) for p in profiles] + self.profiles
        self._reported = len(self.profiles)

    def finish(self) -> None:
        """Reports the layer just finished (begin calls it at each new layer; runs call it at the end)."""
        if self.progress and len(self.profiles) > self._reported:
            self._reported = len(self.profiles)
            last = self.profiles[-1]
            print(f"  {last.layer}: {last.seconds:.1f} s ({last.key_load_seconds:.1f} s loading keys), "
                  f"levels {last.level_in}->{last.level_out}, peak RSS {last.rss_peak_gb:.2f} GB",
                  file=sys.stderr, flush=True)

    def note_key_load(self, seconds: float) -> None:
        """Charges key loading inside the current layer, so a profile separates I/O from arithmetic."""
        self._key_seconds += seconds

    def end(self, op) -> None:
        peak = self.sampler.window_peak()
        rss = self.sampler.current()
        bootstraps = op.bootstraps if op.kind == "bootstrap" else 0
        last = self.profiles[-1] if self.profiles else None
        if last is not None and last.layer == op.layer:
            last.seconds = round(time.perf_counter() - self._started, 4)
            last.level_out, last.bootstraps = op.level_out, last.bootstraps + bootstraps
            last.rss_end_gb, last.rss_peak_gb = rss / GB, max(last.rss_peak_gb, peak / GB)
            last.key_load_seconds = round(self._key_seconds, 4)
        else:
            self.profiles.append(LayerProfile(op.layer, round(time.perf_counter() - self._started, 4),
                                              op.level_in, op.level_out, bootstraps, self._rss_start / GB,
                                              rss / GB, peak / GB, round(self._key_seconds, 4)))
        if peak > self.budget_gb * GB:
            raise BudgetExceededError(
                f"layer {op.layer} ({op.name}) reached {peak / GB:.2f} GB, over the {self.budget_gb:.2f} GB "
                "budget; stopped cleanly before the next op"
            )
