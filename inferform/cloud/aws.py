"""One place that makes boto3 clients, and a way to tell whether AWS credentials exist without asking the network.

Tests point every client at a moto server with `endpoint_url` (or boto3's own AWS_ENDPOINT_URL variable); the
production path is the same code with the endpoint left to boto3.
"""

import os
from pathlib import Path
from typing import Any

DEFAULT_REGION = "us-east-1"
# AWS's price list API answers from a few regions only; us-east-1 serves every region's prices.
PRICING_REGION = "us-east-1"
_ENV_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")
_CONFIG_KEYS = ("aws_access_key_id", "credential_process", "sso_session", "sso_start_url", "role_arn")


def has_credentials() -> bool:
    """True when boto3 would find credentials in the environment or the shared files.

    Reads only the environment and ~/.aws: the instance-metadata service (an EC2 instance role) is a network call,
    and `inferform plan` must stay fast without credentials. On an instance with a role, set AWS_PROFILE or use
    the shared config to opt in to live prices.
    """
    if any(os.environ.get(name) for name in _ENV_CREDENTIALS):
        return True
    home = Path.home() / ".aws"
    for env, default in (("AWS_SHARED_CREDENTIALS_FILE", home / "credentials"), ("AWS_CONFIG_FILE", home / "config")):
        path = Path(os.environ.get(env) or default)
        try:
            text = path.read_text(errors="replace").lower()
        except OSError:
            continue
        if any(key in text for key in _CONFIG_KEYS):
            return True
    return False


def offline_requested() -> bool:
    """INFERFORM_OFFLINE=1 (or `plan --offline`): use only what ships with inferform, never the network."""
    return os.environ.get("INFERFORM_OFFLINE", "").lower() in ("1", "true", "yes")


def client(service: str, region: str | None = None, *, endpoint_url: str | None = None,
           attempts: int = 3, timeout_s: float = 10.0) -> Any:
    """A boto3 client with bounded retries and timeouts: a CLI should fail in seconds, not hang on a bad network."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=timeout_s / 2, read_timeout=timeout_s,
                    retries={"max_attempts": attempts, "mode": "standard"}, user_agent_extra="inferform")
    session = boto3.session.Session(region_name=region or DEFAULT_REGION)  # fresh: credentials as they are now
    return session.client(service, endpoint_url=endpoint_url, config=config)
