"""Benchmarks that print figures (`make bench`): targets are checked here, not by timed unit tests."""
