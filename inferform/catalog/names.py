"""Just the names in the catalogs (model ids, quants, GPUs, instance types), read without building row models.

`inferform validate` only asks "does this name exist?"; answering from the raw data keeps pydantic row
models (and their schema building) off the start-up path.
"""

import re
from collections.abc import Callable
from functools import cache

from inferform.catalog.files import data_files, read_data

_NOISE = re.compile(r"\b(nvidia|geforce|tesla|amd|radeon|apple|graphics)\b")
_CPU_NOISE = re.compile(r"\(r\)|\(tm\)|\b(amd|intel|processor|cpu)\b|@.*$|\b\d+-cores?\b|\b\d+-core\b")


def normalize_gpu(name: str) -> str:
    """'NVIDIA GeForce RTX 4080 SUPER' and 'rtx4080 super' both become 'rtx4080super'."""
    return re.sub(r"[^a-z0-9]", "", _NOISE.sub("", name.lower()))


@cache
def model_ids() -> tuple[str, ...]:
    return tuple(m["id"] for path in data_files("models") for m in read_data(f"models/{path.name}")["models"])


@cache
def quant_names() -> tuple[str, ...]:
    return tuple(q["name"] for q in read_data("quant_types.yaml")["quant_types"])


def _spellings(file: str, key: str, normalize: Callable[[str], str]) -> dict[str, str]:
    """Every accepted spelling of a catalog's rows (name and aliases, normalised) → the row's canonical name."""
    index: dict[str, str] = {}
    for row in read_data(file)[key]:
        for spelling in (row["name"], *row.get("aliases", [])):
            index.setdefault(normalize(spelling), row["name"])
    return index


@cache
def gpu_names() -> dict[str, str]:
    return _spellings("gpus.yaml", "gpus", normalize_gpu)


def canonical_gpu(name: str) -> str | None:
    return gpu_names().get(normalize_gpu(name))


def normalize_cpu(name: str) -> str:
    """'AMD Ryzen 9 7950X 16-Core Processor' and 'ryzen 9 7950x' both become 'ryzen97950x'."""
    return re.sub(r"[^a-z0-9]", "", _CPU_NOISE.sub("", name.lower()))


@cache
def cpu_names() -> dict[str, str]:
    """CPU spellings → names: a detected CPU the catalog lacks (most of them) costs no row models."""
    return _spellings("cpus.yaml", "cpus", normalize_cpu)


def canonical_cpu(name: str) -> str | None:
    return cpu_names().get(normalize_cpu(name))


@cache
def instance_type_names() -> tuple[str, ...]:
    return tuple(row["type"] for row in read_data("instance_types.yaml")["instance_types"])
