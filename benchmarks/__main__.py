"""Run every benchmark and print its figures; exit 1 when a target is missed."""

from __future__ import annotations

import sys

from benchmarks import (
    batched,
    checkpoints,
    decisions,
    instance_choice,
    memory_truth,
    router_memory,
    speed_accuracy,
    startup,
    swap,
    vllm_throughput,
)


def main() -> int:
    results = [startup.main(), instance_choice.main(), speed_accuracy.main(), batched.main(), decisions.main(),
               memory_truth.main(), checkpoints.main(), swap.main(), router_memory.main(), vllm_throughput.main()]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
