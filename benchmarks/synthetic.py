"""Write a GGUF that llama.cpp loads, for any catalog model and quant, without downloading the model.

The memory model is checked against what llama-server logs (model/KV/compute buffer sizes), and weight values
do not change any of those, so a file with the right tensor table, zero-filled data and the hyperparameters
llama.cpp's load_hparams reads is enough. `n_layers` truncates the stack (same per-layer shapes) so big models
fit on a small machine.

The data section is written sparse by default (the file system stores holes, which read back as zeros), so a
multi-GB file costs neither the time to write it nor the disk; pass sparse=False to write real zero bytes.

    python -m benchmarks.synthetic qwen2.5-7b-instruct Q4_K_M /tmp/q.gguf --layers 4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter

from inferform.catalog.models import ModelEntry, load_models
from inferform.catalog.quants import load_quant_types
from inferform.planner.tensors import synthesize_tensors

ALIGNMENT = 32
CHUNK = 16 << 20
# Values real GGUFs of these families carry; they change no buffer size, but keep the model plausible.
ROPE_FREQ_BASE = {"qwen35": 10000000.0, "qwen35moe": 10000000.0, "qwen3next": 10000000.0, "llama": 500000.0,
                  "qwen2": 1000000.0, "qwen3": 1000000.0, "qwen3moe": 1000000.0,
                  "gemma3": 1000000.0, "gpt-oss": 150000.0, "phi3": 250000.0, "mistral3": 1000000.0}
RMS_EPS = {"lfm2": 1e-5, "gemma3": 1e-6, "gemma4": 1e-6, "qwen2": 1e-6, "qwen3": 1e-6, "qwen3moe": 1e-6, "qwen35": 1e-6,
           "qwen35moe": 1e-6, "qwen3next": 1e-6}
N_SPECIAL = 3  # <unk> <s> </s>
N_BYTE_TOKENS = 256  # <0x00>..<0xFF>: lets the SPM tokenizer find its newline token


def truncated(entry: ModelEntry, n_layers: int | None) -> ModelEntry:
    """The same model with only the first n_layers blocks (per-layer shapes unchanged)."""
    if n_layers is None or n_layers >= entry.shapes.n_layers:
        return entry
    shapes = entry.shapes.model_copy(update={
        "n_layers": n_layers, "first_dense_layers": min(entry.shapes.first_dense_layers, n_layers),
        "layer_pattern": entry.shapes.layer_pattern[:n_layers],
        "attn_layers": tuple(il for il in entry.shapes.attn_layers if il < n_layers)})
    return entry.model_copy(update={"shapes": shapes})


def _hparams(w: GGUFWriter, entry: ModelEntry, quant: str) -> None:
    """What load_hparams (src/llama-model.cpp) and the per-arch load_arch_hparams (src/models/*.cpp) read."""
    arch, s = entry.architecture, entry.shapes
    w.add_string("general.name", f"synthetic {entry.id} {quant}")
    ftype = load_quant_types()[quant].ftype
    if ftype is not None:
        w.add_uint32("general.file_type", ftype)
    w.add_uint32("general.quantization_version", 2)
    u32 = {
        "context_length": entry.context_trained,
        "embedding_length": s.n_embd,
        "block_count": s.n_layers + s.nextn_layers,
        "feed_forward_length": s.n_ff or s.n_ff_expert,
        "attention.head_count": s.n_head,
        "attention.head_count_kv": s.n_head_kv,
        "attention.key_length": s.head_dim_k,
        "attention.value_length": s.head_dim_v,
        # llama requires n_rot == head_dim; the Gated DeltaNet hybrids rotate a quarter (partial_rotary_factor)
        "rope.dimension_count": s.head_dim_k // 4 if s.full_attention_interval else s.head_dim_k,
        "vocab_size": s.n_vocab,
    }
    if s.is_moe:  # qwen3moe/gpt-oss need expert_feed_forward_length; all MoE need both counts > 0
        u32 |= {"expert_count": s.n_expert, "expert_used_count": s.n_expert_used,
                "expert_feed_forward_length": s.n_ff_expert}
        if s.first_dense_layers:
            u32["leading_dense_block_count"] = s.first_dense_layers
        if s.n_ff_shared:
            u32["expert_shared_feed_forward_length"] = s.n_ff_shared
    if s.sliding_window:  # gemma3/gpt-oss: n_swa; the pattern is hard-coded (6 / 2) unless this key is given
        u32["attention.sliding_window"] = s.sliding_window
        if s.swa_pattern:
            u32["attention.sliding_window_pattern"] = s.swa_pattern
    if s.shortconv_l_cache:  # lfm2.cpp: conv layers are the ones with no KV heads
        u32.pop("attention.head_count_kv", None)
        w.add_array(f"{arch}.attention.head_count_kv",
                    [0 if s.is_recurrent(il) else s.n_head_kv for il in range(s.n_layers)])
        u32["shortconv.l_cache"] = s.shortconv_l_cache
    if s.layer_pattern:  # nemotron-h.cpp: the layer kinds are read from per-layer KV heads and FFN widths
        u32.pop("attention.head_count_kv", None)
        u32.pop("feed_forward_length", None)
        w.add_array(f"{arch}.attention.head_count_kv", [s.n_head_kv if c == "*" else 0 for c in s.layer_pattern])
        w.add_array(f"{arch}.feed_forward_length", [s.n_ff if c == "-" else 0 for c in s.layer_pattern])
        u32 |= {"ssm.conv_kernel": s.ssm_conv_kernel, "ssm.inner_size": s.ssm_inner_size,
                "ssm.state_size": s.ssm_state_size, "ssm.group_count": s.ssm_group_count,
                "ssm.time_step_rank": s.ssm_time_step_rank}
        w.add_float32(f"{arch}.attention.layer_norm_epsilon", 1e-5)
    if s.full_attention_interval:  # what qwen35.cpp / qwen35moe.cpp / qwen3next.cpp load_arch_hparams require
        u32 |= {"full_attention_interval": s.full_attention_interval, "ssm.conv_kernel": s.ssm_conv_kernel,
                "ssm.inner_size": s.ssm_inner_size, "ssm.state_size": s.ssm_state_size,
                "ssm.group_count": s.ssm_group_count, "ssm.time_step_rank": s.ssm_time_step_rank}
        if arch != "qwen3next":  # multi-axis rope sections (the converter's default for Qwen3.5)
            w.add_array(f"{arch}.rope.dimension_sections", [11, 11, 10, 0])
    if s.nextn_layers:
        u32["nextn_predict_layers"] = s.nextn_layers
    if arch == "glm4moe":  # required by glm4-moe.cpp; partial rope (half the head)
        u32 |= {"expert_shared_count": s.n_expert_shared, "rope.dimension_count": s.head_dim_k // 2,
                "expert_gating_func": 2}
        w.add_float32(f"{arch}.expert_weights_scale", 1.0)
        w.add_bool(f"{arch}.expert_weights_norm", True)
    if arch == "gemma4":  # gemma4.cpp: a per-layer pattern array, per-layer KV heads, both head sizes
        from inferform.catalog.models import layer_heads

        u32.pop("attention.sliding_window_pattern", None)
        u32.pop("attention.head_count_kv", None)
        swa = [(il + 1) % max(s.swa_pattern, 1) != 0 for il in range(s.n_layers)]
        w.add_array(f"{arch}.attention.sliding_window_pattern", swa)
        w.add_array(f"{arch}.attention.head_count_kv", [layer_heads(s, flag)[1] for flag in swa])
        u32 |= {"attention.key_length": s.global_head_dim, "attention.value_length": s.global_head_dim,
                "attention.key_length_swa": s.head_dim_k, "attention.value_length_swa": s.head_dim_v,
                "rope.dimension_count": s.global_head_dim, "rope.dimension_count_swa": s.head_dim_k,
                "attention.shared_kv_layers": 0, "embedding_length_per_layer_input": 0}
        w.add_float32(f"{arch}.final_logit_softcapping", 30.0)
    if arch == "llama4":  # required; the chunk (8192) and its 3-in-4 pattern are hard-coded in llama4.cpp
        u32["interleave_moe_layer_step"] = max(s.moe_layer_step, 1)
        u32.pop("attention.sliding_window", None)
        u32.pop("attention.sliding_window_pattern", None)
    if s.is_mla:  # what conversion/deepseek.py writes: the cached row as key_length over one kv head
        u32 |= {"attention.head_count_kv": 1, "attention.key_length": s.kv_lora_rank + s.rope_dim,
                "attention.value_length": s.kv_lora_rank, "attention.key_length_mla": s.head_dim_k,
                "attention.value_length_mla": s.head_dim_v, "attention.kv_lora_rank": s.kv_lora_rank,
                "rope.dimension_count": s.rope_dim, "expert_shared_count": s.n_expert_shared,
                "expert_gating_func": 2}  # sigmoid
        if s.q_lora_rank:
            u32["attention.q_lora_rank"] = s.q_lora_rank
        w.add_float32(f"{arch}.expert_weights_scale", 2.5)
        w.add_bool(f"{arch}.expert_weights_norm", True)
    for key, value in u32.items():
        w.add_uint32(f"{arch}.{key}", value)
    w.add_float32(f"{arch}.rope.freq_base", ROPE_FREQ_BASE.get(arch, 10000.0))
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", RMS_EPS.get(arch, 1e-5))


def _tokenizer(w: GGUFWriter, n_vocab: int) -> None:
    """A sentencepiece ("llama") vocabulary of exactly n_vocab tokens: llama.cpp sizes token_embd from it."""
    if n_vocab < N_SPECIAL + N_BYTE_TOKENS:
        raise ValueError(f"n_vocab {n_vocab} is too small for a synthetic vocabulary")
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(N_BYTE_TOKENS))]
    tokens += [f"\u2581t{i}" for i in range(n_vocab - len(tokens))]
    types = [2, 3, 3] + [6] * N_BYTE_TOKENS + [1] * (n_vocab - N_SPECIAL - N_BYTE_TOKENS)  # unknown, control, byte
    w.add_string("tokenizer.ggml.model", "llama")
    w.add_string("tokenizer.ggml.pre", "default")
    w.add_array("tokenizer.ggml.tokens", tokens)
    w.add_array("tokenizer.ggml.scores", [0.0] * n_vocab)  # float32
    w.add_array("tokenizer.ggml.token_type", types)  # int32
    w.add_uint32("tokenizer.ggml.unknown_token_id", 0)
    w.add_uint32("tokenizer.ggml.bos_token_id", 1)
    w.add_uint32("tokenizer.ggml.eos_token_id", 2)
    w.add_bool("tokenizer.ggml.add_bos_token", True)


def write_synthetic_gguf(entry: ModelEntry, quant: str, path: Path, n_layers: int | None = None, *,
                         sparse: bool = True) -> Path:
    """Write `entry` at `quant` (optionally cut to n_layers blocks) to `path`, streaming: memory stays ~16 MiB."""
    entry = truncated(entry, n_layers)
    quant = next(q for q in load_quant_types() if q.upper() == quant.upper())
    tensors = synthesize_tensors(entry, quant)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(path, entry.architecture)
    _hparams(writer, entry, quant)
    _tokenizer(writer, entry.shapes.n_vocab)
    for t in tensors:  # numpy order is ggml's reversed; a non-uint8 dtype makes raw_dtype take the shape as is
        writer.add_tensor_info(t.name, tuple(reversed(t.shape)), np.dtype(np.float32), t.n_bytes,
                               raw_dtype=GGMLQuantizationType[t.type_name])
    writer.write_header_to_file(path)
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    assert writer.fout is not None
    fout = writer.fout[0]
    end = fout.tell()
    zeros = b"" if sparse else bytes(CHUNK)
    for t in tensors:
        end = GGUFWriter.ggml_pad(end, ALIGNMENT)
        fout.seek(end)
        if not sparse:
            for start in range(0, t.n_bytes, CHUNK):
                fout.write(zeros[:min(CHUNK, t.n_bytes - start)])
        end += t.n_bytes
    fout.truncate(GGUFWriter.ggml_pad(end, ALIGNMENT))
    writer.close()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("quant")
    parser.add_argument("path", type=Path)
    parser.add_argument("--layers", type=int, default=None)
    args = parser.parse_args(argv)
    out = write_synthetic_gguf(load_models()[args.model], args.quant, args.path, args.layers)
    print(f"{out}: {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
