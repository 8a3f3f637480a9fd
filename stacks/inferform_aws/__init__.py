"""inferform's AWS stack: `InferformInstance` and its `InstanceArgs` (see instance.py)."""

from .instance import TAG_EXPIRES, TAG_OWNER, TAG_SETUP, InferformInstance, InstanceArgs

__all__ = ["TAG_EXPIRES", "TAG_OWNER", "TAG_SETUP", "InferformInstance", "InstanceArgs"]
