"""Inference engines inferform runs: registry.py lists them and what each can do; one module per engine builds its
argv (launch.py holds what the planner decided); scripts.py loads the engine role's build scripts."""
