"""inferform's AWS stack: `InferformInstance` and its `InstanceArgs` (instance.py), and `InferformCluster` with its
`ClusterArgs` for multi-node setups (cluster.py)."""

from .cluster import ClusterArgs, InferformCluster
from .instance import TAG_EXPIRES, TAG_OWNER, TAG_SETUP, InferformInstance, InstanceArgs

__all__ = ["TAG_EXPIRES", "TAG_OWNER", "TAG_SETUP", "ClusterArgs", "InferformCluster", "InferformInstance",
           "InstanceArgs"]
