"""Check or fetch a Hugging Face safetensors checkpoint (a folder, the thing vLLM loads), on the target.

Why a script of its own: a checkpoint is a folder of many files, not one GGUF, so the model role's single-file
stat and sha256 checks do not apply. `check` says whether a folder in place is a whole checkpoint: config.json
there, every shard the safetensors index names present, the safetensors bytes equal to the plan's when the plan
read them from the folder, and each file's size equal to the manifest a verified fetch wrote. `fetch` downloads a
Hub snapshot with huggingface_hub (the vLLM venv has it) into `<dest>.part`, which resumes what an interrupted
apply left, verifies every file against the hashes the Hub publishes (the sha256 of LFS files, the git blob
sha1 of the small ones), writes that manifest, and only then renames the folder to the name vLLM loads: a
partial or wrong snapshot is never served.

  checkpoint.py check --dir D [--bytes N]
  checkpoint.py fetch --repo ORG/REPO [--revision R] --dest D [--bytes N] [--token-stdin]

Prints one JSON line: {"ok": true, ...} or {"error": "..."} (also on stderr). Exit status: 0 ok, 1 the fetch
failed, 2 bad arguments, 3 the folder is not the planned checkpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

MANIFEST = ".inferform-checkpoint.json"
# what vLLM reads from a checkpoint; the rest of a repository (other formats, images, original/ weights) stays
PATTERNS = ("*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken", "*.py")
SKIP_DIRS = ("original/", "metal/", "onnx/", "gguf/")
CHUNK = 1 << 20


class CheckpointError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def problems(folder: Path, planned_bytes: int) -> list[str]:
    """Why `folder` is not a whole checkpoint (empty: it is)."""
    if not folder.is_dir():
        return ["it is not a folder"]
    out = []
    if not (folder / "config.json").is_file():
        out.append("it has no config.json")
    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        out.append("it has no .safetensors files")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            named = set(json.loads(index.read_text()).get("weight_map", {}).values())
        except (OSError, ValueError) as err:
            out.append(f"its model.safetensors.index.json does not parse ({err})")
            named = set()
        missing = sorted(n for n in named if not (folder / n).is_file())
        if missing:
            out.append(f"shards its index names are missing: {', '.join(missing[:3])}"
                       + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
    total = sum(s.stat().st_size for s in shards)
    if planned_bytes > 0 and shards and total != planned_bytes:
        out.append(f"its safetensors files hold {total} bytes, not the planned {planned_bytes}")
    manifest = folder / MANIFEST
    if manifest.is_file():
        for name, want in json.loads(manifest.read_text()).get("files", {}).items():
            path = folder / name
            if not path.is_file():
                out.append(f"{name}, which the verified fetch wrote, is missing")
            elif path.stat().st_size != want["size"]:
                out.append(f"{name} is {path.stat().st_size} bytes, not the fetched {want['size']}")
    return out


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def wanted(name: str) -> bool:
    from fnmatch import fnmatch

    return not name.startswith(SKIP_DIRS) and "/" not in name and any(fnmatch(name, p) for p in PATTERNS)


def verify_against(folder: Path, siblings: list[dict]) -> dict[str, dict]:
    """Each wanted file of the Hub's listing, checked in `folder`: size, and the sha256 (LFS) or the git blob id.
    Returns the manifest entries; raises with every mismatch."""
    files, bad = {}, []
    for s in siblings:
        name = s["name"]
        if not wanted(name):
            continue
        path = folder / name
        if not path.is_file():
            bad.append(f"{name} was not downloaded")
            continue
        size = path.stat().st_size
        if s.get("size") is not None and size != s["size"]:
            bad.append(f"{name} is {size} bytes, the Hub says {s['size']}")
            continue
        if s.get("sha256"):
            got = _sha256(path)
            if got != s["sha256"]:
                bad.append(f"{name} has sha256 {got}, the Hub says {s['sha256']}")
        elif s.get("blob_id") and _git_blob_sha1(path) != s["blob_id"]:
            bad.append(f"{name} does not match the Hub's git blob id {s['blob_id']}")
        files[name] = {"size": size, **({"sha256": s["sha256"]} if s.get("sha256") else {})}
    if bad:
        raise CheckpointError("; ".join(bad[:5]) + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""), 3)
    return files


def _hub_listing(repo: str, revision: str | None, token: str | None) -> tuple[str, list[dict]]:
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo, revision=revision, files_metadata=True, token=token or None)
    return info.sha, [{"name": s.rfilename, "size": s.size, "blob_id": s.blob_id,
                       "sha256": s.lfs.sha256 if s.lfs else None} for s in info.siblings or []]


def fetch(repo: str, revision: str | None, dest: Path, planned_bytes: int, token: str | None) -> dict:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError as err:
        raise CheckpointError(f"huggingface_hub is not importable by {sys.executable} ({err}); run this with the "
                              "vLLM venv's python", 1) from None
    part = dest.with_name(dest.name + ".part")
    try:
        commit, siblings = _hub_listing(repo, revision, token)
        snapshot_download(repo, revision=commit, local_dir=part, token=token or None,
                          allow_patterns=[p for p in PATTERNS], ignore_patterns=[d + "*" for d in SKIP_DIRS])
    except HfHubHTTPError as err:
        status = getattr(err.response, "status_code", None)
        why = ("access denied: the repository may be gated or private; set HF_TOKEN to a token granted access"
               if status in (401, 403) else "not found: check the organisation, repository and revision"
               if status == 404 else str(err).splitlines()[0])
        raise CheckpointError(f"hf://{repo}: {why}", 1) from None
    except OSError as err:  # the network, or the disk
        raise CheckpointError(f"hf://{repo}: {err}; what was downloaded is kept in {part} and resumes", 1) from None
    try:
        files = verify_against(part, siblings)
    except CheckpointError:
        shutil.rmtree(part, ignore_errors=True)
        raise
    (part / MANIFEST).write_text(json.dumps({"repo": repo, "commit": commit, "files": files}, indent=1))
    shutil.rmtree(part / ".cache", ignore_errors=True)  # huggingface_hub's resume bookkeeping
    found = problems(part, planned_bytes)
    if found:
        shutil.rmtree(part, ignore_errors=True)
        raise CheckpointError("the downloaded snapshot is not the planned checkpoint: " + "; ".join(found), 3)
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.is_dir():
        shutil.rmtree(dest)
    os.replace(part, dest)
    return {"ok": True, "commit": commit, "files": len(files),
            "bytes": sum(f["size"] for f in files.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check")
    check.add_argument("--dir", required=True, type=Path)
    check.add_argument("--bytes", type=int, default=0)
    get = sub.add_parser("fetch")
    get.add_argument("--repo", required=True)
    get.add_argument("--revision")
    get.add_argument("--dest", required=True, type=Path)
    get.add_argument("--bytes", type=int, default=0)
    get.add_argument("--token-stdin", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            found = problems(args.dir, args.bytes)
            if found:
                raise CheckpointError("; ".join(found), 3)
            report = {"ok": True}
        else:
            token = sys.stdin.readline().strip() if args.token_stdin else os.environ.get("HF_TOKEN")
            report = fetch(args.repo, args.revision, args.dest, args.bytes, token)
    except CheckpointError as err:
        print(json.dumps({"error": str(err)}))
        print(f"error: {err}", file=sys.stderr)
        return err.code
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
