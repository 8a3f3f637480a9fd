"""GGUF storage types (exact block layouts) and file quantizations (what users pick: Q4_K_M, Q8_0, ...)."""

from functools import cache

from pydantic import Field

from inferform.catalog.files import read_data, validated
from inferform.catalog.rows import Row


class GgmlType(Row):
    name: str
    id: int = Field(ge=0)
    block_size: int = Field(gt=0)
    type_size: int = Field(gt=0)
    bits_per_weight: float = Field(gt=0)


class QuantType(Row):
    name: str
    ftype: int | None = Field(None, ge=0)
    base_type: str
    bits_per_weight: float = Field(gt=0)
    ppl_delta: float | None = None
    family: str
    quality: str
    quality_rank: int


@cache
def load_ggml_types() -> dict[str, GgmlType]:
    return validated("ggml_types", ["ggml_types.yaml"], lambda: {
        row["name"]: GgmlType.model_validate(row) for row in read_data("ggml_types.yaml")["ggml_types"]})


@cache
def load_quant_types() -> dict[str, QuantType]:
    return validated("quant_types", ["quant_types.yaml"], lambda: {
        row["name"]: QuantType.model_validate(row) for row in read_data("quant_types.yaml")["quant_types"]})
