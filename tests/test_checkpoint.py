"""Checkpoint folders (what vLLM loads): roles/inferform_model/files/checkpoint.py's checks, and the model role
placing a local folder (linked, verified, a wrong one removed and never served).

The Hub download itself (`checkpoint.py fetch`, huggingface_hub's snapshot_download) cannot run here (no internet);
what it verifies against is tested: the Hub's sha256 for LFS files and git's blob id for small ones, the latter
checked against `git hash-object` itself.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from inferform.apply.runner import run_playbook

SCRIPT = Path(__file__).resolve().parent.parent / "roles" / "inferform_model" / "files" / "checkpoint.py"


def _module():
    spec = importlib.util.spec_from_file_location("inferform_checkpoint_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ck = _module()


def checkpoint(folder: Path, shards: dict[str, bytes], *, index: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    for name, data in shards.items():
        (folder / name).write_bytes(data)
    if index:
        weight_map = {f"layer.{i}": name for i, name in enumerate(shards)}
        (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return folder


SHARDS = {"model-00001-of-00002.safetensors": b"a" * 1000, "model-00002-of-00002.safetensors": b"b" * 500}


def test_a_whole_checkpoint_passes_and_each_missing_part_is_named(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path / "ok", SHARDS)
    assert ck.problems(folder, 1500) == []
    assert ck.problems(folder, 0) == []
    assert ck.problems(folder, 1499) == ["its safetensors files hold 1500 bytes, not the planned 1499"]
    (folder / "model-00002-of-00002.safetensors").unlink()
    found = ck.problems(folder, 0)
    assert found == ["shards its index names are missing: model-00002-of-00002.safetensors"]
    (folder / "config.json").unlink()
    assert "it has no config.json" in ck.problems(folder, 0)
    assert ck.problems(tmp_path / "absent", 0) == ["it is not a folder"]


def test_the_manifest_of_a_verified_fetch_catches_a_file_changed_since(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path / "m", SHARDS)
    (folder / ck.MANIFEST).write_text(json.dumps({"files": {"tokenizer.json": {"size": 10},
                                                            "model-00001-of-00002.safetensors": {"size": 1000}}}))
    assert ck.problems(folder, 0) == ["tokenizer.json, which the verified fetch wrote, is missing"]
    (folder / "tokenizer.json").write_text("x" * 11)
    assert ck.problems(folder, 0) == ["tokenizer.json is 11 bytes, not the fetched 10"]


def test_files_are_verified_against_the_hubs_sha256_and_git_blob_ids(tmp_path: Path) -> None:
    import hashlib

    folder = checkpoint(tmp_path / "v", SHARDS)
    (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    blob = subprocess.run(["git", "hash-object", str(folder / "tokenizer.json")], capture_output=True, text=True,
                          check=True).stdout.strip()
    lfs = hashlib.sha256(SHARDS["model-00001-of-00002.safetensors"]).hexdigest()
    siblings = [{"name": "model-00001-of-00002.safetensors", "size": 1000, "sha256": lfs, "blob_id": "x"},
                {"name": "tokenizer.json", "size": 18, "sha256": None, "blob_id": blob},
                {"name": "README.md", "size": 5, "sha256": None, "blob_id": "y"},  # not fetched: not checked
                {"name": "original/consolidated.pth", "size": 9, "sha256": "z", "blob_id": "z"}]
    files = ck.verify_against(folder, siblings)
    assert files == {"model-00001-of-00002.safetensors": {"size": 1000, "sha256": lfs},
                     "tokenizer.json": {"size": 18}}
    (folder / "tokenizer.json").write_text('{"version": "1.1"}')  # same size, other content
    with pytest.raises(ck.CheckpointError, match=r"tokenizer.json does not match the Hub's git blob id"):
        ck.verify_against(folder, siblings)
    (folder / "model-00001-of-00002.safetensors").write_bytes(b"c" * 1000)
    with pytest.raises(ck.CheckpointError, match="has sha256"):
        ck.verify_against(folder, siblings[:1])
    siblings.append({"name": "model-00003.safetensors", "size": 1, "sha256": "0" * 64, "blob_id": None})
    with pytest.raises(ck.CheckpointError, match=r"model-00003.safetensors was not downloaded"):
        ck.verify_against(folder, siblings[1:])


def test_check_prints_one_json_line_and_exits_3_for_a_wrong_folder(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path / "c", SHARDS)
    done = subprocess.run([sys.executable, str(SCRIPT), "check", "--dir", str(folder), "--bytes", "7"],
                          capture_output=True, text=True)
    assert done.returncode == 3
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "error": "its safetensors files hold 1500 bytes, not the planned 7"}


def _role(tmp_path: Path, source: Path, models: Path, planned: int):
    playbook = tmp_path / "model.yml"
    playbook.write_text("- hosts: all\n  gather_facts: true\n  gather_subset: [min]\n  roles: [inferform_model]\n")
    return run_playbook(str(playbook), {
        "inferform_model_source": str(source), "inferform_model_dir": str(models),
        "inferform_model_filename": "abc-ckpt", "inferform_model_checkpoint": True,
        "inferform_model_bytes": planned, "inferform_model_cache_dir": str(tmp_path / "cache")},
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")


def test_the_role_links_a_checkpoint_folder_and_removes_one_that_is_not_the_planned_one(tmp_path: Path) -> None:
    source = checkpoint(tmp_path / "src", SHARDS)
    models = tmp_path / "models"
    done = _role(tmp_path, source, models, 1500)
    assert done.rc == 0, done.messages
    placed = models / "abc-ckpt"
    assert placed.is_symlink() and placed.resolve() == source.resolve()
    again = _role(tmp_path, source, models, 1500)
    assert again.rc == 0 and again.changed == 0, again.messages

    # the folder changed since it was planned: the placed link is removed and the apply stops, saying why
    (source / "model-00002-of-00002.safetensors").write_bytes(b"b" * 501)
    failed = _role(tmp_path, source, models, 1500)
    assert failed.rc != 0
    assert "its safetensors files hold 1501 bytes, not the planned 1500" in " ".join(failed.messages), failed.messages
    assert not placed.exists() and not placed.is_symlink(), "a wrong checkpoint must never be served"
    assert source.is_dir(), "the user's folder is never removed, only the link"
