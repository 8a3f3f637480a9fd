"""Placement planning: which tensors a model has and where they go."""
