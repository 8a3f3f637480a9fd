"""Download one model file on the target, resuming an interrupted download, with only the standard library.

ansible's get_url starts over after an interruption, which for a 40 GB model over a poor link may never finish.
This script downloads into `<dest>.part` and, when a `.part` from an earlier attempt is there, asks only for the
rest with `Range: bytes=N-`. A `.part` is resumed only when its record `<dest>.part.json` names the same URL:
file names repeat across repositories and revisions, and the start of another file would pass unnoticed when no
sha256 is known. The record also keeps the server's validator (a strong ETag or Last-Modified), sent as
`If-Range`, so a file that changed on the server since is sent whole instead of spliced.

The sha256 covers the whole file (the kept prefix is hashed first, the rest while it streams), so nothing is read
twice after the download. A size or sha256 that differs from the plan removes the `.part`: it is never renamed,
so the name llama-server loads only ever holds a verified file. Success renames `.part` to `<dest>` atomically.

Redirects are followed by hand (Hugging Face `resolve/` URLs redirect to a CDN): the token goes only to https
URLs on the token host (huggingface.co), never to the CDN or anywhere else. The token is read from stdin
(`--token-stdin`, how the role passes it: a variable in `environment:` would sit in the shell's command line)
or from HF_TOKEN; it is never printed.

Prints one JSON line. Success: {"bytes", "resumed_from", "sha256"}. Failure: {"error", "status"} (status: the
HTTP status or null), the message on stderr too. Exit status: 0 done, 1 HTTP or network error before any
data, 2 bad arguments, 3 the file failed verification (removed), 4 the transfer broke (the .part is kept for the
next run to resume).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urlsplit

CHUNK = 1 << 20
MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)
TOKEN_HOST = "huggingface.co"
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


class FetchError(Exception):
    """The download failed; the message is written for the user and `code` is the exit status."""

    def __init__(self, message: str, *, status: int | None = None, code: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand every 3xx back as an HTTPError: each hop decides anew which headers it may carry."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _http_message(status: int, reason: str) -> str:
    if status == 404:
        return "not found. Check the URL (for hf://: the organisation, repository, revision and file name)"
    if status in (401, 403):
        return ("access denied. The repository may be gated or private: set HF_TOKEN to a token that has been "
                "granted access (and accept the model's terms on its Hugging Face page)")
    return f"the server answered {status} {reason}".rstrip()


def _open(url: str, offset: int, validator: str | None, token: str, token_host: str,
          timeout: float) -> http.client.HTTPResponse | urllib.error.HTTPError:
    """The response to GET `url` (from byte `offset`) after redirects; a 416 is returned, other errors raised."""
    for _ in range(MAX_REDIRECTS + 1):
        headers = {"User-Agent": "inferform-fetch-model/1", "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if validator:
                headers["If-Range"] = validator
        parts = urlsplit(url)
        if token and parts.scheme == "https" and (parts.hostname or "").lower() == token_host:
            headers["Authorization"] = f"Bearer {token}"
        try:
            return _OPENER.open(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code in REDIRECTS and exc.headers.get("Location"):
                exc.close()
                url = urljoin(url, exc.headers["Location"])
                continue
            if exc.code == 416 and offset:
                return exc
            exc.close()
            raise FetchError(_http_message(exc.code, exc.reason), status=exc.code) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise FetchError(f"could not connect: {reason}") from None
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


def _validator(headers: object) -> str | None:
    """What If-Range may carry: a strong ETag, else Last-Modified (weak ETags are not allowed there)."""
    etag = headers.get("ETag")  # type: ignore[attr-defined]
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")  # type: ignore[attr-defined]


def _resume_point(part: Path, record: Path, url: str) -> tuple[int, str | None, int | None]:
    """Bytes of `part` to keep, the validator and total size recorded with them; (0, None, None) to start over."""
    try:
        saved = json.loads(record.read_text())
        size = part.stat().st_size
    except (OSError, ValueError):
        return 0, None, None
    if not isinstance(saved, dict) or saved.get("url") != url:
        return 0, None, None
    return size, saved.get("validator"), saved.get("total")


def _hash_prefix(part: Path, size: int, digest: hashlib._Hash) -> None:
    with part.open("rb") as f:
        left = size
        while left:
            block = f.read(min(CHUNK, left))
            if not block:
                raise FetchError(f"{part} shrank while it was read")
            digest.update(block)
            left -= len(block)


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fetch(url: str, dest: Path, *, expected_bytes: int = 0, expected_sha256: str = "", token: str = "",
          token_host: str = TOKEN_HOST, timeout: float = 60) -> dict[str, object]:
    part, record = dest.with_name(dest.name + ".part"), dest.with_name(dest.name + ".part.json")
    dest.parent.mkdir(parents=True, exist_ok=True)
    offset, validator, total = _resume_point(part, record, url)
    if expected_bytes and offset > expected_bytes:
        offset, validator, total = 0, None, None  # longer than the planned file: not its start
    response = _open(url, offset, validator, token, token_host, timeout)
    digest = hashlib.sha256()
    with response:
        status = response.status if isinstance(response, http.client.HTTPResponse) else response.code
        match = _CONTENT_RANGE.fullmatch((response.headers.get("Content-Range") or "").strip())
        if status == 206 and (not match or match.group(1) is None or int(match.group(1)) != offset):
            raise FetchError(f"the server answered a range other than bytes={offset}- "
                             f"({response.headers.get('Content-Range')}); delete {part} to start over", status=206)
        if match and match.group(3) != "*":
            total = int(match.group(3))
        if status == 416:
            length = 0  # nothing left to send: what is kept is the whole file, if it verifies
        elif status in (200, 206):
            if status == 200:
                offset = 0  # the server ignored the range (or the file changed): the body is the whole file
                length_header = response.headers.get("Content-Length")
                total = int(length_header) if length_header and length_header.isdigit() else None
            length = int(response.headers.get("Content-Length") or -1)
            record.write_text(json.dumps({"url": url, "validator": _validator(response.headers), "total": total}))
        else:
            raise FetchError(_http_message(status, getattr(response, "reason", "")), status=status)
        if offset:
            _hash_prefix(part, offset, digest)
        received = 0
        with part.open("r+b" if offset else "wb") as out:
            out.truncate(offset)
            out.seek(offset)
            try:
                while length < 0 or received < length:
                    block = response.read(CHUNK if length < 0 else min(CHUNK, length - received))
                    if not block:
                        break
                    out.write(block)
                    digest.update(block)
                    received += len(block)
            except (OSError, http.client.HTTPException) as exc:
                raise FetchError(_broken(part, offset + received, total, exc), code=4) from None
            finally:
                out.flush()
                os.fsync(out.fileno())
        if length >= 0 and received < length:
            raise FetchError(_broken(part, offset + received, total, "the connection closed early"), code=4)
    size = offset + received
    problems = []
    want = expected_bytes or total or 0
    if want and size != want:
        problems.append(f"its size is {size} bytes, not the expected {want}")
    got = digest.hexdigest()
    if expected_sha256 and got != expected_sha256.lower():
        problems.append(f"its sha256 is {got}, not the expected {expected_sha256.lower()} (checksum mismatch)")
    if problems:
        _remove(part, record)
        raise FetchError(f"the downloaded file failed verification: {'; '.join(problems)}. It was removed and is "
                         "never served; check the source, or the size/sha256 the plan expects", code=3)
    os.replace(part, dest)
    _remove(record)
    _fsync_dir(dest.parent)
    return {"bytes": size, "resumed_from": offset, "sha256": got}


def _broken(part: Path, kept: int, total: int | None, reason: object) -> str:
    of = f" of {total}" if total else ""
    return (f"the transfer broke after {kept}{of} bytes ({reason}); they are kept in {part} and the next run "
            "resumes from there")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--dest", required=True, type=Path, help="final path; the download goes to <dest>.part")
    parser.add_argument("--bytes", type=int, default=0, help="expected size; 0: the size the server announces")
    parser.add_argument("--sha256", default="", help="expected sha256 hex digest; empty: not checked")
    parser.add_argument("--timeout", type=float, default=60, help="seconds a stalled connection is waited for")
    parser.add_argument("--token-stdin", action="store_true", help="read the bearer token from stdin, not HF_TOKEN")
    parser.add_argument("--token-host", default=TOKEN_HOST, help="the only host the token is sent to (https only)")
    args = parser.parse_args(argv)
    token = sys.stdin.readline().strip() if args.token_stdin else os.environ.get("HF_TOKEN", "").strip()
    try:
        result = fetch(args.url, args.dest, expected_bytes=args.bytes, expected_sha256=args.sha256, token=token,
                       token_host=args.token_host.lower(), timeout=args.timeout)
    except FetchError as exc:
        print(json.dumps({"error": str(exc), "status": exc.status}))
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
