"""Import the Pulumi programs shipped under stacks/ (top level in a checkout, inferform/_assets in a wheel).

stacks/ is an asset folder, not part of the `inferform` package, so its packages are loaded by path — the same
way in a checkout, an installed wheel and the tests — and registered under their own top-level names.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from inferform.assets import asset_dir


def load_stack(package: str = "inferform_aws") -> ModuleType:
    """The stack package by name (imports pulumi and pulumi_aws: call only when a cloud apply needs it)."""
    if package in sys.modules:
        return sys.modules[package]
    folder = asset_dir("stacks") / package
    spec = importlib.util.spec_from_file_location(package, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"stack package {package!r} is missing from {folder.parent}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[package]
        raise
    return module
