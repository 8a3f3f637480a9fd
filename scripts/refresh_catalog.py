"""Rewrite catalog rows from the Hugging Face Hub: shapes from config.json, GGUF files with byte sizes and sha256.

Run where the Hub is reachable (this project's build machines cannot reach it):

    python scripts/refresh_catalog.py                 # every model in scripts/catalog_repos.yaml
    python scripts/refresh_catalog.py qwen3.5-35b-a3b --dry-run   # one model, print the diff, write nothing

For each model in the list it reads the config repo's config.json (the `text_config` of a multimodal one) and maps
it to the catalog's shapes, lists the GGUF repos' files with their sizes and sha256 (`HfApi.model_info(...,
files_metadata=True)`), and rewrites that model's row in its inferform/data/models file: shapes, quants (bytes;
sha256 for single files; split files summed over their shards and named by the first), source and read date.
Rows of other models, each file's header comment and a quant's `recipe` note are kept; comments inside rows are
not (the row is rewritten from the Hub). A config whose model_type has no mapping here,
or a quant no repo ships, is reported and left as it was. Then run `make test`: the catalog's self-check holds the
new rows to their published sizes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "inferform" / "data" / "models"
REPOS = Path(__file__).resolve().parent / "catalog_repos.yaml"


class Hub(Protocol):
    def config(self, repo: str) -> dict[str, Any]: ...
    def files(self, repo: str) -> list[tuple[str, int, str | None]]: ...  # (path, size, sha256 of LFS files)


class HubApi:
    """The real Hub, through huggingface_hub."""

    def __init__(self) -> None:
        from huggingface_hub import HfApi

        self.api = HfApi()

    def config(self, repo: str) -> dict[str, Any]:
        import json

        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(repo, "config.json")).read_text())

    def files(self, repo: str) -> list[tuple[str, int, str | None]]:
        info = self.api.model_info(repo, files_metadata=True)
        return [(s.rfilename, s.size or 0, s.lfs.sha256 if s.lfs else None) for s in info.siblings or []]


def _moe(c: dict[str, Any], shared: int) -> dict[str, int]:
    experts = c.get("num_experts") or c.get("num_local_experts") or c.get("n_routed_experts") or 0
    if not experts:
        return {}
    ff_shared = c.get("shared_expert_intermediate_size", c.get("moe_intermediate_size", 0) * shared)
    return {"n_expert": experts, "n_expert_used": c["num_experts_per_tok"], "n_ff_expert": c["moe_intermediate_size"],
            "n_expert_shared": shared if ff_shared else 0, "n_ff_shared": ff_shared if shared else 0}


def _common(c: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    heads = c["num_attention_heads"]
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    tied = c.get("tie_word_embeddings", top.get("tie_word_embeddings", False))
    return {"n_layers": c["num_hidden_layers"], "n_embd": c["hidden_size"], "n_head": heads,
            "n_head_kv": c.get("num_key_value_heads", heads), "head_dim_k": head_dim, "head_dim_v": head_dim,
            "n_ff": c.get("intermediate_size", 0), "n_vocab": c["vocab_size"], "tied_embeddings": bool(tied),
            "ffn_gated": True, "attn_bias": bool(c.get("attention_bias", False))}


def _dense(arch: str) -> Callable[[dict, dict], tuple[str, dict]]:
    return lambda c, top: (arch, _common(c, top))


def _qwen_moe(c: dict[str, Any], top: dict[str, Any]) -> tuple[str, dict]:
    return "qwen3moe", {**_common(c, top), "n_ff": 0, **_moe(c, 0)}


def _gated_delta_net(c: dict[str, Any], top: dict[str, Any]) -> tuple[str, dict]:
    """Qwen3.5 / Qwen3.6 / Qwen3-Next: the GGUF keys conversion/qwen.py writes (ssm.* from linear_*)."""
    moe = _moe(c, 1)
    arch = "qwen3next" if c.get("model_type") == "qwen3_next" else "qwen35moe" if moe else "qwen35"
    shapes = {**_common(c, top), **moe}
    if moe:
        shapes["n_ff"] = 0
    shapes |= {"full_attention_interval": c.get("full_attention_interval", 4),
               "ssm_conv_kernel": c["linear_conv_kernel_dim"], "ssm_state_size": c["linear_key_head_dim"],
               "ssm_group_count": c["linear_num_key_heads"], "ssm_time_step_rank": c["linear_num_value_heads"],
               "ssm_inner_size": c["linear_value_head_dim"] * c["linear_num_value_heads"],
               "attn_output_gate": bool(c.get("attn_output_gate", True)), "nextn_layers": 0}
    return arch, shapes


def _deepseek_v3(c: dict[str, Any], top: dict[str, Any]) -> tuple[str, dict]:
    """DeepSeek-V3 / R1 / Kimi K2 (conversion/deepseek.py): multi-head latent attention; the MTP layer is dropped."""
    shapes = {**_common(c, top), **_moe(c, c.get("n_shared_experts", 0))}
    shapes |= {"head_dim_k": c["qk_nope_head_dim"] + c["qk_rope_head_dim"], "head_dim_v": c["v_head_dim"],
               "n_ff_shared": c["moe_intermediate_size"] * c.get("n_shared_experts", 0),
               "first_dense_layers": c.get("first_k_dense_replace", 0), "q_lora_rank": c.get("q_lora_rank") or 0,
               "kv_lora_rank": c["kv_lora_rank"], "rope_dim": c["qk_rope_head_dim"]}
    return "deepseek2", shapes


def _glm4_moe(c: dict[str, Any], top: dict[str, Any]) -> tuple[str, dict]:
    """GLM-4.5 family (conversion/glm.py): the converter keeps the MTP block(s)."""
    shared = c.get("n_shared_experts", 0)
    shapes = {**_common(c, top), **_moe(c, shared)}
    shapes |= {"n_ff_shared": c["moe_intermediate_size"] * shared,
               "first_dense_layers": c.get("first_k_dense_replace", 0), "qk_norm": bool(c.get("use_qk_norm", False)),
               "nextn_layers": c.get("num_nextn_predict_layers", 0)}
    return "glm4moe", shapes


def _llama4(c: dict[str, Any], top: dict[str, Any]) -> tuple[str, dict]:
    """Llama 4 (conversion/llama.py Llama4Model): intermediate_size is the expert width, _mlp the dense one."""
    shapes = {**_common(c, top), "n_ff": c.get("intermediate_size_mlp", 0), "n_expert": c["num_local_experts"],
              "n_expert_used": c["num_experts_per_tok"], "n_ff_expert": c["intermediate_size"], "n_expert_shared": 1,
              "n_ff_shared": c["intermediate_size"], "moe_layer_step": c.get("interleave_moe_layer_step", 1),
              "sliding_window": 8192, "swa_pattern": 4}
    return "llama4", shapes


# config.json model_type -> (GGUF architecture, shapes); the converters' own mapping (conversion/*.py)
MAPPERS: dict[str, Callable[[dict, dict], tuple[str, dict]]] = {
    "llama": _dense("llama"), "mistral": _dense("llama"), "qwen2": _dense("qwen2"), "qwen3": _dense("qwen3"),
    "qwen3_moe": _qwen_moe, "qwen3_next": _gated_delta_net, "qwen3_5_text": _gated_delta_net,
    "qwen3_5_moe_text": _gated_delta_net, "deepseek_v3": _deepseek_v3, "kimi_k2": _deepseek_v3,
    "glm4_moe": _glm4_moe, "llama4_text": _llama4,
}


def shapes_from_config(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    text = config.get("text_config") or config
    model_type = text.get("model_type") or config.get("model_type", "")
    if model_type not in MAPPERS:
        raise KeyError(f"no mapping for config model_type {model_type!r} (known: {', '.join(sorted(MAPPERS))})")
    return MAPPERS[model_type](text, config)


_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


def quant_files(hub: Hub, repo: str, quants: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Catalog quant rows for `quants` from one GGUF repo, and the quants it does not ship."""
    listing = hub.files(repo)
    rows, missing = [], []
    for quant in quants:
        pattern = re.compile(rf"(^|[-_/]){re.escape(quant)}(-\d{{5}}-of-\d{{5}})?\.gguf$", re.IGNORECASE)
        found = sorted((path, size, sha) for path, size, sha in listing
                       if pattern.search(path) and "mmproj" not in path.lower())
        if not found:
            missing.append(f"{repo}: {quant}")
            continue
        first = found[0]
        row: dict[str, Any] = {"quant": quant, "file": f"hf://{repo}/{first[0]}", "bytes": sum(s for _, s, _ in found)}
        if len(found) == 1 and first[2]:
            row["sha256"] = first[2]
        row |= {"source": f"https://huggingface.co/{repo}/tree/main", "read": dt.date.today().isoformat()}
        if _SHARD.search(first[0]):
            row["source"] += f" (bytes: all {len(found)} shards)"
        rows.append(row)
    return rows, missing


def refreshed_row(hub: Hub, spec: dict[str, Any], old: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    config = hub.config(spec["config_repo"])
    arch, shapes = shapes_from_config(config)
    text = config.get("text_config") or config
    row = dict(old or {})
    row |= {"id": spec["id"], "name": spec.get("name", row.get("name", spec["id"])),
            "family": spec.get("family", row.get("family", "")), "architecture": arch}
    for key in ("params_b", "active_params_b", "license", "use_cases"):
        if key in spec:
            row[key] = spec[key]
    row["context_trained"] = text.get("max_position_embeddings", row.get("context_trained"))
    row["shapes"] = shapes
    row["source"] = f"https://huggingface.co/{spec['config_repo']}/blob/main/config.json"
    row["read"] = dt.date.today().isoformat()
    quants, missing = [], []
    recipes = {q["quant"]: q["recipe"] for q in (old or {}).get("quants", []) if q.get("recipe")}
    for gguf in spec.get("gguf", []):
        found, lost = quant_files(hub, gguf["repo"], gguf["quants"])
        for q in found:  # a publisher's own mix stays marked (the self-check holds it to its note)
            if q["quant"] in recipes:
                q["recipe"] = recipes[q["quant"]]
        quants += found
        missing += lost
    if quants:
        row["quants"] = quants
    ordered = {key: row[key] for key in ("id", "name", "family", "architecture", "params_b", "active_params_b",
                                         "extra_params_b", "license", "use_cases", "context_trained", "shapes",
                                         "source", "read", "quants") if key in row}
    return ordered, missing


def _header(text: str) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


def refresh(hub: Hub, specs: list[dict[str, Any]], models_dir: Path = MODELS, dry_run: bool = False,
            out=sys.stdout) -> list[str]:
    """Rewrite the rows of `specs` in their files; returns what could not be refreshed."""
    problems: list[str] = []
    by_file: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        by_file.setdefault(spec["file"], []).append(spec)
    for name, file_specs in by_file.items():
        path = models_dir / name
        text = path.read_text() if path.exists() else ""
        rows = (yaml.safe_load(text) or {}).get("models", []) if text else []
        index = {row["id"]: i for i, row in enumerate(rows)}
        for spec in file_specs:
            try:
                row, missing = refreshed_row(hub, spec, rows[index[spec["id"]]] if spec["id"] in index else None)
            except KeyError as exc:
                problems.append(f"{spec['id']}: {exc}")
                continue
            problems += [f"{spec['id']}: no file for {m}" for m in missing]
            if spec["id"] in index:
                rows[index[spec["id"]]] = row
            else:
                rows.append(row)
        new = _header(text) + yaml.safe_dump({"models": rows}, sort_keys=False, width=200, allow_unicode=True)
        if dry_run:
            out.writelines(difflib.unified_diff(text.splitlines(keepends=True), new.splitlines(keepends=True),
                                                f"a/{name}", f"b/{name}"))
        elif new != text:
            path.write_text(new)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="catalog ids to refresh (default: every model in the list)")
    parser.add_argument("--list", type=Path, default=REPOS, help="the repos to read (YAML)")
    parser.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    args = parser.parse_args(argv)
    specs = yaml.safe_load(args.list.read_text())["models"]
    if args.ids:
        unknown = set(args.ids) - {s["id"] for s in specs}
        if unknown:
            print(f"not in {args.list}: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        specs = [s for s in specs if s["id"] in args.ids]
    problems = refresh(HubApi(), specs, dry_run=args.dry_run)
    for problem in problems:
        print(f"left as it was: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
