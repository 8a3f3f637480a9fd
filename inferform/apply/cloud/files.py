"""The local files a cloud apply keeps: Pulumi's state backend, its secrets passphrase, a per-setup SSH key.

Pulumi state lives in a local file backend under the user's data dir (no Pulumi Cloud account needed). Secrets in
it (the API key output) are encrypted with a passphrase inferform generates once into a 0600 file; Pulumi reads
it through PULUMI_CONFIG_PASSPHRASE_FILE, so it never appears in an environment, a log or a state file. Each
setup gets its own ed25519 key pair (private half 0600 in the setup's state dir) for the EC2 key pair and SSH.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from inferform.dirs import data_dir as data_root
from inferform.state import setup_dir


def backend_dir() -> Path:
    return data_root() / "pulumi"


def backend_url() -> str:
    return backend_dir().as_uri()


def _write_private(path: Path, content: bytes) -> None:
    """Create a file readable only by its owner; refuses to overwrite (O_EXCL), so a racing writer fails."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


def passphrase_file() -> Path:
    """The secrets passphrase file (0600), generated the first time; losing it makes the state's secrets unreadable."""
    path = data_root() / "pulumi-passphrase"
    if not path.exists():
        _write_private(path, (secrets.token_urlsafe(32) + "\n").encode())
    return path


def workspace_env() -> dict[str, str]:
    """Environment for the Pulumi CLI: the local backend and where the passphrase is (not the passphrase)."""
    backend_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
    return {"PULUMI_BACKEND_URL": backend_url(), "PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase_file()),
            "PULUMI_SKIP_UPDATE_CHECK": "true"}


def ssh_key_file(name: str) -> Path:
    return setup_dir(name) / "ssh" / "id_ed25519"


def ssh_keypair(name: str) -> tuple[Path, str]:
    """The setup's private key path and OpenSSH public key line, generating the pair the first time."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = ssh_key_file(name)
    public = private.with_suffix(".pub")
    if not private.exists():
        key = Ed25519PrivateKey.generate()
        _write_private(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                  serialization.NoEncryption()))
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        public.write_bytes(line + f" inferform-{name}\n".encode())
    elif not public.exists():  # the public half is derived data: rebuild it rather than fail
        key = serialization.load_ssh_private_key(private.read_bytes(), password=None)
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        public.write_bytes(line + f" inferform-{name}\n".encode())
    return private, public.read_text().strip()
