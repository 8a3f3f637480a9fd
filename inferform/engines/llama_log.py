"""Read the memory llama-server reports (at -lv 4) so predictions can be held to it.

Lines of interest (pinned build, Oct 2026):
  load_tensors:   CPU_Mapped model buffer size =    92.10 MiB
  llama_kv_cache: size =   90.00 MiB (  4096 cells,  30 layers,  1/1 seqs), K (f16): ...
  llama_memory_recurrent:        CPU RS buffer size =    62.81 MiB   (hybrid models' recurrent state)
  llama_context:        CPU  output buffer size =     0.19 MiB
  sched_reserve:        CPU compute buffer size =    17.51 MiB
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from inferform.units import MIB

_MODEL = re.compile(r"load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB")
_KV = re.compile(r"llama_kv_cache: size =\s+([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers")
_KV_DEV = re.compile(r"llama_kv_cache:\s+(\S+) KV buffer size =\s+([\d.]+) MiB")
_RS_DEV = re.compile(r"llama_memory_recurrent:\s+(\S+) RS buffer size =\s+([\d.]+) MiB")
_OUTPUT = re.compile(r"(\S+)\s+output buffer size =\s+([\d.]+) MiB")
_COMPUTE = re.compile(r"(\S+) compute buffer size =\s+([\d.]+) MiB")


@dataclass
class LoggedMemory:
    """Buffer sizes in bytes, by buffer type (CPU_Mapped, CPU_REPACK, CUDA0, CUDA_Host, ...)."""

    model: dict[str, int] = field(default_factory=dict)
    kv: dict[str, int] = field(default_factory=dict)
    state: dict[str, int] = field(default_factory=dict)  # recurrent state ("RS buffer")
    kv_caches: list[tuple[int, int, int]] = field(default_factory=list)  # (bytes, cells, layers)
    output: dict[str, int] = field(default_factory=dict)
    compute: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def _gpu(name: str) -> bool:
        return not name.startswith("CPU") and not name.endswith("_Host")

    def side(self, gpu: bool) -> dict[str, int]:
        """weights/kv/compute (compute includes output, as the plan contract counts it) for one side."""
        def pick(buffers: dict[str, int]) -> int:
            return sum(v for k, v in buffers.items() if self._gpu(k) == gpu)

        return {"weights": pick(self.model), "kv": pick(self.kv), "state": pick(self.state),
                "compute": pick(self.compute) + pick(self.output)}


def _mib(text: str) -> int:
    return round(float(text) * MIB)


def parse(log: str) -> LoggedMemory:
    mem = LoggedMemory()
    for line in log.splitlines():
        if m := _MODEL.search(line):
            mem.model[m.group(1)] = mem.model.get(m.group(1), 0) + _mib(m.group(2))
        elif m := _RS_DEV.search(line):
            mem.state[m.group(1)] = mem.state.get(m.group(1), 0) + _mib(m.group(2))
        elif m := _KV_DEV.search(line):
            mem.kv[m.group(1)] = mem.kv.get(m.group(1), 0) + _mib(m.group(2))
        elif m := _KV.search(line):
            mem.kv_caches.append((_mib(m.group(1)), int(m.group(2)), int(m.group(3))))
        elif m := _OUTPUT.search(line):
            mem.output[m.group(1)] = mem.output.get(m.group(1), 0) + _mib(m.group(2))
        elif m := _COMPUTE.search(line):
            mem.compute[m.group(1)] = mem.compute.get(m.group(1), 0) + _mib(m.group(2))
    return mem
