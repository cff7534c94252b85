"""Per-layer time and memory measurement, and the memory budget guard."""

from resnet_fhe.profiling.memory import BudgetExceededError, LayerProfile, MemoryGuard, RssSampler, check_estimate

__all__ = ["BudgetExceededError", "LayerProfile", "MemoryGuard", "RssSampler", "check_estimate"]
