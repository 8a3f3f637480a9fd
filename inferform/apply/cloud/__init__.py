"""Applying a cloud setup: preflight, the Pulumi stack, the instance over SSH, its status and TTL."""
