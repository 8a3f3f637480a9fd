"""Fill in exact GGUF file sizes in inferform/data/models/*.yaml from the Hugging Face Hub.

Run where the Hub is reachable: `python scripts/refresh_model_sizes.py [--dry-run]`. Each hf:// quant row whose
size the Hub reports gets `bytes`, `source` (the repo's tree page) and `read` (today). Rows the Hub does not
know are left as they are and listed. The YAML is edited line by line so comments survive.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from pathlib import Path

MODELS = Path(__file__).resolve().parent.parent / "inferform" / "data" / "models"
FILE_LINE = re.compile(r"^(\s*)file: (hf://([^/]+)/([^/]+)/(\S+))\s*$")


def hub_sizes(repo: str, files: list[str]) -> dict[str, int]:
    from huggingface_hub import HfApi

    infos = HfApi().get_paths_info(repo, files)
    return {info.path: info.size for info in infos if getattr(info, "size", None)}


def refresh(path: Path, dry_run: bool) -> list[str]:
    lines = path.read_text().splitlines(keepends=True)
    wanted: dict[str, list[str]] = {}
    for line in lines:
        match = FILE_LINE.match(line)
        if match:
            wanted.setdefault(f"{match.group(3)}/{match.group(4)}", []).append(match.group(5))
    sizes = {repo: hub_sizes(repo, files) for repo, files in wanted.items()}
    out, missing, today = [], [], dt.date.today().isoformat()
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        match = FILE_LINE.match(line)
        i += 1
        if not match:
            continue
        indent, repo, name = match.group(1), f"{match.group(3)}/{match.group(4)}", match.group(5)
        size = sizes.get(repo, {}).get(name)
        if size is None:
            missing.append(match.group(2))
            continue
        while i < len(lines) and re.match(rf"^{indent}(bytes|source|read):", lines[i]):
            i += 1  # replaced below
        out += [f"{indent}bytes: {size}\n", f"{indent}source: https://huggingface.co/{repo}/tree/main\n",
                f"{indent}read: {today}\n"]
    if not dry_run:
        path.write_text("".join(out))
    return missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    for path in sorted(MODELS.glob("*.yaml")):
        for file in refresh(path, args.dry_run):
            print(f"{path.name}: no size on the Hub for {file}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
