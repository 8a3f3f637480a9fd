"""Inference engines inferform builds and runs (llama.cpp today)."""
