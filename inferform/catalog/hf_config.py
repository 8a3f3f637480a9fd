"""A Hugging Face config.json → the catalog's Shapes: what the vLLM planner needs of a local checkpoint.

Why: a checkpoint folder is to vLLM what a GGUF header is to llama.cpp — the truth about the model it will load.
Only the fields the memory model reads are taken; an architecture this does not know is refused with its name
(the plan would otherwise be sized on guesses).
"""

import json
from pathlib import Path
from typing import Any

from inferform.catalog.models import Shapes

DENSE = {"llama", "mistral", "qwen2", "qwen3"}
DTYPES = {"bfloat16", "float16", "float32"}


def read_config(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "config.json").read_text())


def shapes_from_config(c: dict[str, Any]) -> Shapes:
    kind = c.get("model_type", "")
    heads = c["num_attention_heads"]
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    base = dict(n_layers=c["num_hidden_layers"], n_embd=c["hidden_size"], n_head=heads,
                n_head_kv=c.get("num_key_value_heads", heads), head_dim_k=head_dim, head_dim_v=head_dim,
                n_ff=c.get("intermediate_size", 0), n_vocab=c["vocab_size"],
                tied_embeddings=bool(c.get("tie_word_embeddings", False)))
    if kind in DENSE:
        return Shapes(**base)
    if kind == "qwen3_moe":
        return Shapes(**base, n_expert=c["num_experts"], n_expert_used=c["num_experts_per_tok"],
                      n_ff_expert=c["moe_intermediate_size"])
    if kind == "gpt_oss":
        return Shapes(**{**base, "n_ff": 0}, n_expert=c["num_local_experts"], n_expert_used=c["num_experts_per_tok"],
                      n_ff_expert=c["intermediate_size"], sliding_window=c.get("sliding_window", 0), swa_pattern=2)
    if kind in ("deepseek_v3", "deepseek_v2"):
        return Shapes(**{**base, "head_dim_k": c["qk_nope_head_dim"] + c["qk_rope_head_dim"],
                         "head_dim_v": c["v_head_dim"]},
                      n_expert=c["n_routed_experts"], n_expert_used=c["num_experts_per_tok"],
                      n_ff_expert=c["moe_intermediate_size"], n_expert_shared=c.get("n_shared_experts", 0),
                      n_ff_shared=c["moe_intermediate_size"] * c.get("n_shared_experts", 0),
                      first_dense_layers=c.get("first_k_dense_replace", 0), q_lora_rank=c.get("q_lora_rank") or 0,
                      kv_lora_rank=c["kv_lora_rank"], rope_dim=c["qk_rope_head_dim"])
    raise ValueError(f"model_type {kind!r} is not one the vLLM planner sizes yet (known: "
                     f"{', '.join(sorted(DENSE | {'qwen3_moe', 'gpt_oss', 'deepseek_v3'}))})")


def config_dtype(c: dict[str, Any]) -> str:
    dtype = c.get("dtype") or c.get("torch_dtype") or "bfloat16"
    return dtype if dtype in DTYPES else "bfloat16"


def checkpoint_bytes(folder: Path) -> int:
    """The weights as stored: every *.safetensors file in the folder."""
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))
