"""Resumable model downloads: roles/inferform_model/files/fetch_model.py against a real HTTP server on 127.0.0.1.

The server honours Range (or is told to ignore it), can cut the connection after K body bytes, redirects, and
records every request's headers, so each test checks what went over the wire as well as what landed on disk.
The last test runs the model role itself (ansible-runner, connection local) over a .part an interrupted run left.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferform.apply.runner import run_playbook
from tests.test_apply_bad_input import _self_signed

SCRIPT = Path(__file__).resolve().parent.parent / "roles" / "inferform_model" / "files" / "fetch_model.py"
TOKEN = "hf_testtoken_" + "x" * 24
_RANGE = re.compile(r"bytes=(\d+)-$")


@dataclasses.dataclass
class Server:
    """What the handler serves and how it misbehaves; `seen` holds each request as (path, headers)."""

    base: str = ""
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)
    redirects: dict[str, str] = dataclasses.field(default_factory=dict)
    cut_after: int | None = None  # the next body stops after this many bytes and the connection is dropped
    ignore_range: bool = False
    seen: list[tuple[str, dict[str, str]]] = dataclasses.field(default_factory=list)
    sent: list[int] = dataclasses.field(default_factory=list)  # body bytes written per response


def _handler(server: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            server.seen.append((self.path, dict(self.headers.items())))
            if self.path in server.redirects:
                self.send_response(302)
                self.send_header("Location", server.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = server.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            match = _RANGE.match(self.headers.get("Range", ""))
            start = int(match.group(1)) if match and not server.ignore_range else None
            if start is not None and self.headers.get("If-Range") not in (None, etag):
                start = None  # changed since: the whole file, as RFC 9110 asks
            if start is not None and start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            chunk = body[start or 0:]
            self.send_response(206 if start is not None else 200)
            if start is not None:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(chunk)))
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            cut, server.cut_after = server.cut_after, None
            if cut is not None:
                self.wfile.write(chunk[:cut])
                self.wfile.flush()
                server.sent.append(min(cut, len(chunk)))
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(chunk)
            server.sent.append(len(chunk))

    return Handler


def _serve(tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    state = Server()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    state.base = f"{'https' if tls else 'http'}://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    yield from _serve()


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """The download folder, apart from the temporary home conftest keeps in tmp_path."""
    (tmp_path / "models").mkdir()
    return tmp_path / "models"


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """https on 127.0.0.1, trusted by the script through SSL_CERT_FILE (the certificate is its own CA)."""
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    yield from _serve(context)


def fetch(url: str, dest: Path, *args: str, env: dict[str, str] | None = None,
          stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(SCRIPT), "--url", url, "--dest", str(dest), "--timeout", "10", *args]
    return subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=60,
                          env={**{k: v for k, v in os.environ.items() if k != "HF_TOKEN"}, **(env or {})})


def report(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    return json.loads(done.stdout.strip().splitlines()[-1])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


BODY = os.urandom(3 * (1 << 20) + 12345)  # more than one 1 MiB read, not a multiple of it


def test_an_interrupted_download_resumes_where_it_stopped(server: Server, models: Path) -> None:
    server.files["/m.gguf"] = BODY
    dest, part = models / "m.gguf", models / "m.gguf.part"
    cut = (1 << 20) + 777
    server.cut_after = cut
    first = fetch(f"{server.base}/m.gguf", dest, "--sha256", sha(BODY), "--bytes", str(len(BODY)))
    assert first.returncode == 4, first.stdout + first.stderr
    assert f"the transfer broke after {cut} of {len(BODY)} bytes" in report(first)["error"]
    assert part.stat().st_size == cut and part.read_bytes() == BODY[:cut] and not dest.exists()

    second = fetch(f"{server.base}/m.gguf", dest, "--sha256", sha(BODY), "--bytes", str(len(BODY)))
    assert second.returncode == 0, second.stdout + second.stderr
    assert report(second) == {"bytes": len(BODY), "resumed_from": cut, "sha256": sha(BODY)}
    assert server.seen[1][1].get("Range") == f"bytes={cut}-", server.seen
    assert server.seen[1][1].get("If-Range", "").startswith('"'), "the ETag guards the splice"
    assert server.sent == [cut, len(BODY) - cut], "the second response carried only the rest"
    assert dest.read_bytes() == BODY
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m.gguf"], "no .part or record left"


def test_a_server_that_ignores_range_restarts_from_zero(server: Server, models: Path) -> None:
    server.files["/m.gguf"] = BODY
    dest = models / "m.gguf"
    server.cut_after = 5000
    assert fetch(f"{server.base}/m.gguf", dest).returncode == 4
    server.ignore_range = True
    done = fetch(f"{server.base}/m.gguf", dest, "--sha256", sha(BODY))
    assert done.returncode == 0, done.stdout + done.stderr
    assert server.seen[1][1].get("Range") == "bytes=5000-"
    assert report(done) == {"bytes": len(BODY), "resumed_from": 0, "sha256": sha(BODY)}
    assert dest.read_bytes() == BODY, "the old prefix was not kept in front of the whole file"


def test_a_part_of_another_url_is_not_resumed(server: Server, models: Path) -> None:
    """Same file name, another source (a new revision): its .part would splice two files together."""
    server.files["/v1/m.gguf"], server.files["/v2/m.gguf"] = BODY[::-1], BODY
    dest = models / "m.gguf"
    server.cut_after = 4096
    assert fetch(f"{server.base}/v1/m.gguf", dest).returncode == 4
    done = fetch(f"{server.base}/v2/m.gguf", dest)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Range" not in server.seen[1][1] and report(done)["resumed_from"] == 0
    assert dest.read_bytes() == BODY


def test_a_checksum_mismatch_removes_the_download(server: Server, models: Path) -> None:
    server.files["/m.gguf"] = BODY
    dest = models / "m.gguf"
    server.cut_after = 100_000
    assert fetch(f"{server.base}/m.gguf", dest).returncode == 4  # the wrong sha256 also covers the resumed prefix
    done = fetch(f"{server.base}/m.gguf", dest, "--sha256", "b" * 64)
    assert done.returncode == 3, done.stdout + done.stderr
    message = report(done)["error"]
    assert f"its sha256 is {sha(BODY)}, not the expected {'b' * 64} (checksum mismatch)" in message, message
    assert "removed" in message and f"error: {message}" in done.stderr
    assert list(models.iterdir()) == [], "no dest, no .part, no record"


def test_a_size_other_than_planned_removes_the_download(server: Server, models: Path) -> None:
    server.files["/m.gguf"] = BODY
    done = fetch(f"{server.base}/m.gguf", models / "m.gguf", "--bytes", str(len(BODY) + 1))
    assert done.returncode == 3
    assert f"its size is {len(BODY)} bytes, not the expected {len(BODY) + 1}" in report(done)["error"]
    assert list(models.iterdir()) == []


def test_a_complete_part_is_verified_without_downloading_again(server: Server, models: Path) -> None:
    """The transfer finished but the rename did not happen: the server answers 416 and the .part is checked."""
    server.files["/m.gguf"] = BODY
    dest = models / "m.gguf"
    (models / "m.gguf.part").write_bytes(BODY)
    (models / "m.gguf.part.json").write_text(json.dumps({"url": f"{server.base}/m.gguf", "validator": None}))
    done = fetch(f"{server.base}/m.gguf", dest, "--sha256", sha(BODY))
    assert done.returncode == 0, done.stdout + done.stderr
    assert report(done) == {"bytes": len(BODY), "resumed_from": len(BODY), "sha256": sha(BODY)}
    assert server.seen[-1][1].get("Range") == f"bytes={len(BODY)}-" and dest.read_bytes() == BODY


def test_404_says_not_found_and_leaves_nothing(server: Server, models: Path) -> None:
    done = fetch(f"{server.base}/missing.gguf", models / "missing.gguf")
    assert done.returncode == 1
    assert report(done)["status"] == 404 and str(report(done)["error"]).startswith("not found")
    assert list(models.iterdir()) == []


def test_the_token_goes_only_to_the_token_host_over_https(tls_server: Server, models: Path) -> None:
    """127.0.0.1 stands for huggingface.co; its redirect to `localhost` stands for the CDN."""
    port = tls_server.base.rsplit(":", 1)[1]
    tls_server.files["/cdn/m.gguf"] = BODY
    tls_server.redirects["/org/repo/resolve/main/m.gguf"] = f"https://localhost:{port}/cdn/m.gguf"
    url = f"{tls_server.base}/org/repo/resolve/main/m.gguf"
    done = fetch(url, models / "m.gguf", "--token-host", "127.0.0.1", env={"HF_TOKEN": TOKEN})
    assert done.returncode == 0, done.stdout + done.stderr
    [(first, to_hub), (second, to_cdn)] = tls_server.seen
    assert (first, second) == ("/org/repo/resolve/main/m.gguf", "/cdn/m.gguf")
    assert to_hub.get("Authorization") == f"Bearer {TOKEN}"
    assert to_cdn["Host"] == f"localhost:{port}" and "Authorization" not in to_cdn, to_cdn
    assert TOKEN not in done.stdout + done.stderr and (models / "m.gguf").read_bytes() == BODY

    tls_server.seen.clear()  # the role's way: the token on stdin, not in the environment or argv
    again = fetch(url, models / "n.gguf", "--token-host", "127.0.0.1", "--token-stdin", stdin=TOKEN + "\n")
    assert again.returncode == 0 and tls_server.seen[0][1].get("Authorization") == f"Bearer {TOKEN}"
    assert TOKEN not in again.stdout + again.stderr


def test_no_token_over_plain_http(server: Server, models: Path) -> None:
    server.redirects["/gated.gguf"] = "/denied"  # answered 404 by the server; what matters is the headers
    done = fetch(f"{server.base}/gated.gguf", models / "g.gguf", "--token-host", "127.0.0.1",
                 env={"HF_TOKEN": TOKEN})
    assert done.returncode == 1 and TOKEN not in done.stdout + done.stderr
    assert [h.get("Authorization") for _, h in server.seen] == [None, None], "never in clear text"


def test_403_says_gated_set_hf_token(models: Path) -> None:
    class Forbidden(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_error(403)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forbidden)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        done = fetch(f"http://127.0.0.1:{httpd.server_address[1]}/m.gguf", models / "m.gguf")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert done.returncode == 1 and report(done)["status"] == 403
    assert "gated or private: set HF_TOKEN" in str(report(done)["error"])


# ------------------------------------------------------------------------------------------- through the role


def test_the_role_resumes_a_part_left_by_an_interrupted_apply(server: Server, tmp_path: Path) -> None:
    server.files["/models/m.gguf"] = BODY
    url = f"{server.base}/models/m.gguf"
    models = tmp_path / "models"
    server.cut_after = 2_000_000
    assert fetch(url, models / "m.gguf").returncode == 4  # what an apply cut short leaves behind
    assert (models / "m.gguf.part").stat().st_size == 2_000_000

    playbook = tmp_path / "model.yml"
    playbook.write_text("- hosts: all\n  gather_facts: true\n  gather_subset: [min]\n  roles: [inferform_model]\n")
    result = run_playbook(str(playbook), {
        "inferform_model_source": url, "inferform_model_dir": str(models), "inferform_model_filename": "m.gguf",
        "inferform_model_sha256": sha(BODY), "inferform_model_bytes": len(BODY),
        "inferform_model_cache_dir": str(tmp_path / "cache")},
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    assert result.rc == 0, result.messages
    assert server.seen[-1][1].get("Range") == "bytes=2000000-", server.seen
    assert server.sent[-1] == len(BODY) - 2_000_000
    assert (models / "m.gguf").read_bytes() == BODY
    assert sorted(p.name for p in models.iterdir()) == ["m.gguf"]


def test_the_disk_check_counts_what_a_part_already_holds(server: Server, tmp_path: Path) -> None:
    """A sparse 8 TiB .part (no record, so it is not resumed but overwritten) covers all but the model's size."""
    import shutil

    server.files["/m.gguf"] = BODY
    models = tmp_path / "models"
    models.mkdir()
    kept = 8 << 40
    with (models / "m.gguf.part").open("wb") as f:
        f.truncate(kept)
    assert shutil.disk_usage(models).free < kept, "the check would pass without counting the .part"
    playbook = tmp_path / "model.yml"
    playbook.write_text("- hosts: all\n  gather_facts: true\n  gather_subset: [min]\n  roles: [inferform_model]\n")
    result = run_playbook(str(playbook), {
        "inferform_model_source": f"{server.base}/m.gguf", "inferform_model_dir": str(models),
        "inferform_model_filename": "m.gguf", "inferform_model_sha256": sha(BODY), "inferform_model_bytes": len(BODY),
        "inferform_model_space_bytes": kept + len(BODY), "inferform_model_cache_dir": str(tmp_path / "cache")},
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    assert result.rc == 0, result.messages
    assert "Range" not in server.seen[-1][1], "a .part without its record is started over"
    assert sorted(p.name for p in models.iterdir()) == ["m.gguf"] and (models / "m.gguf").read_bytes() == BODY
