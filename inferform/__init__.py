"""inferform: infrastructure-as-code for LLM inference."""

__version__ = "0.1.0"
