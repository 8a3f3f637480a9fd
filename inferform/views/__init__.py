"""Presentation: tables, progress and JSON for the terminal. Views read plans and rows; they decide nothing."""
