"""Which kind of file a path holds: one setup, or a group of them (`models:`). Kept apart from setup/group.py so
that every command's dispatch costs a file read and a cached parse, not the group schema's pydantic models."""

from inferform.setup.yamlpos import from_cache, load_yaml, read_text


def is_group(path: str) -> bool:
    """Whether a setup file is a group: a mapping with `models:` (a setup has `model:`). A validated setup's parse
    comes from the loader's cache; anything else is parsed here."""
    text = read_text(path)
    located = from_cache(text, path) or load_yaml(text, path)
    return isinstance(located.data, dict) and "models" in located.data
