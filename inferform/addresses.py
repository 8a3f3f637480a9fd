"""What counts as loopback, for the planner (no API key asked for), the plan contract and apply alike."""

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
