"""Where a setup runs and serves, as every room needs it: which target kinds are cloud instances, and which serve
addresses are loopback (no API key asked for). Light on purpose: `inferform validate` imports it and must not pay
for the Plan's models."""

import ipaddress


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: reachable from this machine only, so no API key is asked for. A host name
    other than localhost is not loopback (it may resolve anywhere)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


CLOUD_KINDS = ("aws-spot", "aws-on-demand", "free-trial")  # target kinds that run on an instance apply creates
