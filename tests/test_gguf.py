"""The fast GGUF reader agrees with the reference gguf.GGUFReader on files written by gguf.GGUFWriter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter

from inferform.errors import InferformError
from inferform.gguf import read_gguf


def write_model(path: Path, vocab: int = 5000) -> None:
    writer = GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_context_length(4096)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv([2, 1])  # a per-layer array: kept
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"tok{i}".encode() for i in range(vocab)])  # a vocabulary: skipped, length kept
    writer.add_token_scores([0.0] * vocab)
    writer.add_tensor("token_embd.weight", np.zeros((vocab, 64), dtype=np.float16))
    for layer in range(2):
        writer.add_tensor(f"blk.{layer}.attn_q.weight", np.zeros((64, 64), dtype=np.float32))
        q8 = np.zeros((128, 34 * 64 // 32), dtype=np.uint8)  # Q8_0: 34 bytes per 32 weights, 128 rows of 64
        writer.add_tensor(f"blk.{layer}.ffn_up_exps.weight", q8,
                          raw_dtype=GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_matches_reference_reader(tmp_path):
    path = tmp_path / "m.gguf"
    write_model(path)
    info = read_gguf(path)
    ref = GGUFReader(str(path))
    assert info.architecture == "llama" and info.arch_value("block_count") == 2
    assert info.arch_value("attention.head_count_kv") == [2, 1]
    assert "tokenizer.ggml.tokens" not in info.metadata and info.array_lengths["tokenizer.ggml.tokens"] == 5000
    assert [t.name for t in info.tensors] == [t.name for t in ref.tensors]
    for mine, theirs in zip(info.tensors, ref.tensors, strict=True):
        assert mine.n_bytes == int(theirs.n_bytes), mine.name
        assert mine.n_elements == int(theirs.n_elements)
        assert mine.type_name == theirs.tensor_type.name
    experts = [t for t in info.tensors if t.is_expert]
    assert [t.layer for t in experts] == [0, 1] and experts[0].n_bytes == 128 * 2 * 34
    assert info.file_bytes == path.stat().st_size


def test_not_a_gguf(tmp_path):
    path = tmp_path / "x.gguf"
    path.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(InferformError, match="bad magic"):
        read_gguf(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "m.gguf"
    write_model(path)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(InferformError, match="truncated"):
        read_gguf(cut)
