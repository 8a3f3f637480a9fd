"""The engine role's target-side scripts, loaded in this process: tests, benchmarks and `make demo` build the
engines with the very code an apply copies to the target (roles/inferform_engine/files/, standard library only).

They live with the role, as the model role's fetch_model.py does, because the target runs them without inferform
installed; here python_venv.py is loaded by path, once, and it loads build_llama_cpp.py beside it (its `_build`).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from inferform.assets import asset_dir


def script_path(name: str) -> Path:
    return asset_dir("roles") / "inferform_engine" / "files" / f"{name}.py"


def _load(name: str) -> ModuleType:
    module_name = f"inferform_engine_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, script_path(name))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def python_venv() -> ModuleType:
    """python_venv.py: ensure_llama_cpp_python(), venv_dir(), venv_python()."""
    return _load("python_venv")


def vllm_venv() -> ModuleType:
    """vllm_venv.py: ensure_vllm(), the package per backend, the pinned vLLM version."""
    return _load("vllm_venv")


def build() -> ModuleType:
    """build_llama_cpp.py: ensure_llama_cpp(), the backend table, the AMX flags, the cache layout."""
    return python_venv()._build
