"""The setup file: its schema (spec), where each value sits in the YAML (yamlpos), checks against the
catalogs (references) and model sources (sources)."""
