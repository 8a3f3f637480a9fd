"""Hardware profiles: what a machine has, detected or described, in one typed object everything else takes."""
