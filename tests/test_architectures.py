"""A GGUF of an architecture (or a mechanism) the memory model does not size is refused with exit 2, naming it
and what is supported: planned as a plain transformer, its KV cache or recurrent state would be wrong (issue 15
measured +89 % for MLA, +190-240 % for hybrid recurrent layers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from inferform.planner.model import supported_architectures

SETUP = ("name: arch\nuse_case: chat\ntarget: {{kind: local, hardware: {{gpus: [], ram_gib: 16, cpu: {{cores: 2}}}}}}\n"
         "model: {{file: {file}}}\n")


def _gguf(path: Path, arch: str, extra: dict[str, int] | None = None) -> Path:
    """A small, complete GGUF of `arch` (header, a vocabulary, a few tensors)."""
    writer = GGUFWriter(str(path), arch)
    writer.add_block_count(2)
    writer.add_context_length(4096)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    for key, value in (extra or {}).items():
        writer.add_uint32(f"{arch}.{key}", value)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"t{i}".encode() for i in range(300)])
    writer.add_tensor("token_embd.weight", np.zeros((300, 64), dtype=np.float16))
    for layer in range(2):
        writer.add_tensor(f"blk.{layer}.attn_q.weight", np.zeros((64, 64), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _plan(cli, tmp_path: Path, model: Path):
    setup = tmp_path / "s.yaml"
    setup.write_text(SETUP.format(file=model))
    return cli("plan", str(setup))


@pytest.mark.parametrize("arch", ["minimax-m2", "gemma3n", "granitehybrid", "nemotron_h_moe"])
def test_an_unknown_architecture_is_refused_by_name(cli, tmp_path: Path, arch: str) -> None:
    done = _plan(cli, tmp_path, _gguf(tmp_path / f"{arch}.gguf", arch))
    assert done.code == 2, done.out
    assert f"GGUF architecture {arch!r} is not one inferform sizes yet" in done.err, done.err
    assert "supported architectures: " + ", ".join(supported_architectures()) in done.err
    assert "Traceback" not in done.err


@pytest.mark.parametrize(("key", "what"), [("ssm.state_size", "recurrent state per slot"),
                                           ("attention.kv_lora_rank", "MLA's compressed KV cache")])
def test_a_mechanism_the_memory_model_lacks_is_refused(cli, tmp_path: Path, key: str, what: str) -> None:
    done = _plan(cli, tmp_path, _gguf(tmp_path / "m.gguf", "llama", {key: 16}))
    assert done.code == 2 and f"carries llama.{key} ({what}" in done.err, done.err


def test_a_supported_architecture_still_plans(cli, tmp_path: Path) -> None:
    done = _plan(cli, tmp_path, _gguf(tmp_path / "ok.gguf", "llama"))
    assert done.code == 0, done.err
    assert supported_architectures() == sorted([
        "deepseek2", "gemma3", "gemma4", "glm4moe", "gpt-oss", "lfm2", "llama", "llama4", "mistral3", "nemotron_h",
        "phi3", "qwen2", "qwen3", "qwen3moe", "qwen35", "qwen35moe", "qwen3next"])
