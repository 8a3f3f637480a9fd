"""Catalog loaders: read the data files under inferform/data/ into typed rows. No numbers live in code."""
