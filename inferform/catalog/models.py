"""The model catalog: shapes the memory model needs, and the GGUF files each model ships as."""

from functools import cache

from pydantic import BaseModel, ConfigDict, Field

from inferform.catalog.files import data_files, read_data, validated
from inferform.catalog.rows import Row
from inferform.errors import InferformError, did_you_mean


class Shapes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    n_layers: int = Field(gt=0)
    n_embd: int = Field(gt=0)
    n_head: int = Field(gt=0)
    n_head_kv: int = Field(gt=0)
    head_dim_k: int = Field(gt=0)
    head_dim_v: int = Field(gt=0)
    n_ff: int = Field(ge=0)
    n_vocab: int = Field(gt=0)
    tied_embeddings: bool = False
    ffn_gated: bool = True
    attn_bias: bool = False
    n_expert: int = Field(0, ge=0)
    n_expert_used: int = Field(0, ge=0)
    n_ff_expert: int = Field(0, ge=0)
    n_expert_shared: int = Field(0, ge=0)
    n_ff_shared: int = Field(0, ge=0)
    first_dense_layers: int = Field(0, ge=0)
    sliding_window: int = Field(0, ge=0)
    swa_pattern: int = Field(0, ge=0)

    @property
    def is_moe(self) -> bool:
        return self.n_expert > 0

    @property
    def n_moe_layers(self) -> int:
        return self.n_layers - self.first_dense_layers if self.is_moe else 0


class QuantFile(Row):
    quant: str
    file: str
    bytes: int | None = Field(None, gt=0, description="Exact size when read from the source.")
    sha256: str | None = None


class ModelEntry(Row):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    name: str
    family: str
    architecture: str
    params_b: float = Field(gt=0)
    active_params_b: float = Field(gt=0)
    extra_params_b: float = Field(0.0, ge=0)
    license: str
    use_cases: list[str]
    context_trained: int = Field(gt=0)
    shapes: Shapes
    quants: list[QuantFile]

    def quant(self, name: str) -> QuantFile | None:
        return next((q for q in self.quants if q.quant.upper() == name.upper()), None)


def param_count(s: Shapes) -> int:
    """Parameters implied by the shapes (matrices only; norms and biases are under 0.1 %)."""
    embed = s.n_vocab * s.n_embd * (1 if s.tied_embeddings else 2)
    attn = s.n_embd * (s.n_head * s.head_dim_k + s.n_head_kv * (s.head_dim_k + s.head_dim_v))
    attn += s.n_head * s.head_dim_v * s.n_embd
    dense_ffn = (3 if s.ffn_gated else 2) * s.n_embd * s.n_ff
    moe_ffn = s.n_expert * 3 * s.n_embd * s.n_ff_expert + s.n_embd * s.n_expert + 3 * s.n_embd * s.n_ff_shared
    n_moe = s.n_moe_layers
    return embed + s.n_layers * attn + (s.n_layers - n_moe) * dense_ffn + n_moe * moe_ffn


@cache
def load_models() -> dict[str, ModelEntry]:
    files = [f"models/{path.name}" for path in data_files("models")]
    return validated("models", files, _validate_models)


def _validate_models() -> dict[str, ModelEntry]:
    models: dict[str, ModelEntry] = {}
    for path in data_files("models"):
        for raw in read_data(f"models/{path.name}")["models"]:
            entry = ModelEntry.model_validate(raw)
            if entry.id in models:
                raise ValueError(f"duplicate model id {entry.id!r} in {path.name}")
            models[entry.id] = entry
    return models


def find_model(model_id: str, *, file: str | None = None, line: int | None = None) -> ModelEntry:
    models = load_models()
    if model_id in models:
        return models[model_id]
    hint = did_you_mean(model_id, models) or "run `inferform models` for the catalog, or give model.file"
    raise InferformError.single(f"unknown model id {model_id!r}", file=file, line=line, hint=hint)
