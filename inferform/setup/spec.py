"""The setup.yaml language: pydantic models (the contract in DESIGN.md) and loading with line-numbered errors.

Strict by design: unknown fields are errors (with did-you-mean), enums list their valid values, numbers have
sane bounds. The JSON Schema exported from these models is what editors use, so every field has a description.
"""

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from inferform.engines.registry import ENGINES
from inferform.engines.registry import NAMES as ENGINE_NAMES
from inferform.errors import InferformError, Problem, did_you_mean
from inferform.setup.sources import check_source, needs_sha256
from inferform.setup.yamlpos import Located, from_cache, load_yaml, read_text, remember
from inferform.targets import CLOUD_KINDS, is_loopback

UseCase = Literal["chat", "coding", "autocomplete", "writing", "extraction", "agent", "rag"]
Experience = Literal["latency", "throughput", "accuracy", "creativity"]
TargetKind = Literal["local", "ssh", "aws-spot", "aws-on-demand", "free-trial"]
EngineName = Literal[("auto", *ENGINE_NAMES)]  # engines/registry.py: one row per engine; auto: the planner picks
CacheType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
TTL = re.compile(r"^(\d+)([mhd])$")
MAX_CONTEXT = 10_485_760  # 10M tokens: beyond any model's trained context


class Strict(BaseModel):
    """Base for every setup model: unknown keys are errors, not silently ignored, and values keep their YAML
    type (strict): `port: true` is not the number 1, nor `count: "2"` the number 2."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class GpuSpec(Strict):
    name: str = Field(description="GPU model, e.g. 'RTX 4080 SUPER'. Known names get VRAM and bandwidth "
                                  "from the catalog; give vram_gib/bandwidth_gbs for others.", min_length=1)
    count: int = Field(1, ge=1, le=16, description="How many of this GPU the machine has.")
    vram_gib: float | None = Field(None, gt=0, le=1024, description="Memory per GPU in GiB (overrides catalog).")
    bandwidth_gbs: float | None = Field(None, gt=0, le=20_000,
                                        description="Memory bandwidth per GPU in GB/s (overrides catalog).")
    fp16_tflops: float | None = Field(None, gt=0, le=10_000,
                                      description="Dense FP16 tensor throughput per GPU (overrides catalog).")
    working_set_gib: float | None = Field(
        None, gt=0, le=1024, description="Apple (unified memory): the Metal working-set limit in GiB, when raised "
                                         "with `sudo sysctl iogpu.wired_limit_mb=N`; default 75 % of memory.")


class CpuSpec(Strict):
    name: str | None = Field(None, description="CPU model, informational or for catalog lookup.")
    cores: int | None = Field(None, ge=1, le=1024, description="Physical cores.")
    threads: int | None = Field(None, ge=1, le=2048, description="Hardware threads.")
    memory_bandwidth_gbs: float | None = Field(None, gt=0, le=2_000,
                                               description="System memory bandwidth in GB/s.")
    flags: list[str] | None = Field(None, description="CPU features that matter for kernels: avx2, avx512f, ...")


class Hardware(Strict):
    gpus: list[GpuSpec] = Field([], description="GPUs; an empty list means CPU only.")
    ram_gib: float | None = Field(None, gt=0, le=65_536, description="System RAM in GiB.")
    cpu: CpuSpec | None = Field(None, description="CPU description; detected for local targets when left out.")


def _check_cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR block like '203.0.113.7/32'") from None


Cidr = Annotated[str, BeforeValidator(lambda v: _check_cidr(str(v)))]

HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


class SshSpec(Strict):
    """A machine reached over SSH (kind: ssh). Keys only: inferform never asks for or stores a password."""

    host: str = Field(description="Hostname or IP address of the machine to run on.")
    port: int = Field(22, ge=1, le=65535, description="SSH port.")
    user: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$",
                             description="Remote user; default: what your ssh config or local user name says.")
    key_file: str | None = Field(None, min_length=1, description="Private key file (path; ~ and paths relative to "
                                                                 "the setup file work). Default: ssh's own keys.")
    python: str | None = Field(None, pattern=r"^/\S+$",
                               description="Absolute path of Python on the target; default: discovered by Ansible.")
    remote_base: str | None = Field(None, pattern=r"^/[^\s'\"{}]*$",
                                    description="Directory on the target for inferform's cache and state "
                                                "(<remote_base>/cache, <remote_base>/state); default: the remote "
                                                "user's ~/.cache and ~/.local/state.")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            pass
        if not HOSTNAME.match(value):
            raise ValueError(f"{value!r} is not a hostname or IP address (e.g. gpu-box.lan, 192.0.2.10)")
        return value


class Target(Strict):
    kind: TargetKind = Field(description="Where it runs: local (this machine), ssh (another machine, see ssh), "
                                         "aws-spot, aws-on-demand, free-trial.")
    hardware: Hardware | None = Field(None, description="Explicit hardware; overrides detection and the catalog. "
                                                        "Required for ssh targets (ram_gib and cpu.cores at least).")
    ssh: SshSpec | None = Field(None, description="How to reach an ssh target (kind: ssh only).")
    region: str | None = Field(None, pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$",
                               description="Cloud region, e.g. us-east-1 (cloud targets only).")
    instance_type: str = Field("auto", pattern=r"^(auto|[a-z][a-z0-9-]*\.[a-z0-9]+)$",
                               description="'auto' (the planner picks) or an instance type like g5.xlarge.")
    max_price_per_hour: float | None = Field(None, gt=0, le=1000, description="Cap in USD per hour (cloud only).")
    ttl: str | None = Field(None, description="Lifetime like '3h', '90m', '2d'; the instance ends itself then.")
    allowed_cidrs: list[Cidr] | None = Field(None, description="Who may reach the endpoint and SSH (cloud only); "
                                             "default: your public IP/32.")

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = TTL.match(str(value))
        if not match or int(match.group(1)) == 0:
            raise ValueError(f"{value!r} is not a duration like '90m', '3h' or '2d'")
        minutes = int(match.group(1)) * {"m": 1, "h": 60, "d": 1440}[match.group(2)]
        if minutes > 30 * 1440:
            raise ValueError(f"{value!r} is longer than 30 days; inferform keeps cloud lifetimes bounded")
        return value

    @field_validator("region", "instance_type", "max_price_per_hour", "ttl", "allowed_cidrs")
    @classmethod
    def _cloud_only(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if kind in ("local", "ssh") and value is not None and value != "auto":
            raise ValueError(f"{info.field_name} applies only to cloud targets ({', '.join(CLOUD_KINDS)}), "
                             f"not kind: {kind}")
        return value

    @model_validator(mode="after")
    def _ssh_needs_host_and_hardware(self) -> "Target":
        """The planner never connects anywhere, so an ssh target must say how big the machine is."""
        if self.kind != "ssh":
            if self.ssh is not None:
                raise ValueError(f"ssh applies only to kind: ssh, not kind: {self.kind}")
            return self
        if self.ssh is None:
            raise ValueError("kind: ssh needs ssh: {host: ...} naming the machine to run on")
        hw = self.hardware
        if hw is None or hw.ram_gib is None or hw.cpu is None or hw.cpu.cores is None:
            raise ValueError("kind: ssh needs hardware with ram_gib and cpu.cores (and gpus, if any): the planner "
                             "sizes the model for that machine without connecting to it")
        return self

    @property
    def is_cloud(self) -> bool:
        return self.kind in CLOUD_KINDS


QUANT_NAME = re.compile(r"^(auto|[A-Za-z0-9_]+)$")
# Names people write for a quantization that llama-quantize spells differently. gpt-oss is released in MXFP4
# (its MoE experts); the GGUF ftype is MOSTLY_MXFP4_MOE, llama-quantize's "MXFP4_MOE".
QUANT_ALIASES = {"MXFP4": "MXFP4_MOE"}


def normal_quant(value: str | None) -> str | None:
    """A quant name with its alias resolved (any case): 'mxfp4' -> 'MXFP4_MOE'; other names unchanged."""
    if value is None:
        return None
    return QUANT_ALIASES.get(value.upper(), value)


class ModelSpec(Strict):
    id: str | None = Field(None, description="A catalog id (see `inferform models`).")
    file: str | None = Field(None, description="hf://org/repo/file.gguf, https://... (with sha256), a local "
                                               "path, or pypi://package.")
    quant: str = Field("auto", pattern=QUANT_NAME.pattern,
                       description="'auto' or a GGUF quantization such as Q4_K_M, Q8_0.")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="Expected SHA-256 of the file.")

    @field_validator("quant")
    @classmethod
    def _quant_alias(cls, value: str) -> str:
        return normal_quant(value) or value

    @field_validator("file")
    @classmethod
    def _file_scheme(cls, value: str | None) -> str | None:
        if value is not None:
            check_source(value)
        return value

    @model_validator(mode="after")
    def _https_needs_sha(self) -> "ModelSpec":
        if self.file and needs_sha256(self.file) and not self.sha256:
            raise ValueError("an https:// model file needs sha256 so a corrupt or swapped file is never served")
        return self


class Serve(Strict):
    host: str = Field("127.0.0.1", description="Address to bind. Anything beyond loopback requires an API key.")
    port: int = Field(8080, ge=1, le=65535, description="TCP port.")
    concurrency: int | None = Field(None, ge=1, le=4096, description=(
        "Requests the endpoint should serve at once (users, agents, a batch job). More than one on a GPU target "
        "makes engine auto pick vLLM; the plan sizes its KV cache so this many full-length requests fit."))

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if value == "localhost":
            return value
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1)") from None
        return value

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.host)


class Overrides(Strict):
    """Pinned values: the planner keeps them and says so in the plan."""

    quant: str | None = Field(None, pattern=QUANT_NAME.pattern, description="GGUF quantization.")
    n_gpu_layers: int | None = Field(None, ge=0, le=1000, description="Layers on the GPU (-ngl).")
    n_cpu_moe: int | None = Field(None, ge=0, le=1000, description="Layers whose MoE experts stay in RAM.")
    tensor_split: list[float] | None = Field(None, description="Share of the model per GPU (--tensor-split).")
    n_ctx: int | None = Field(None, ge=256, le=MAX_CONTEXT, description="Context size in tokens (-c).")
    cache_type_k: CacheType | None = Field(None, description="K cache type (-ctk).")
    cache_type_v: CacheType | None = Field(None, description="V cache type (-ctv); quantized needs flash_attn.")
    flash_attn: bool | None = Field(None, description="Flash attention (-fa).")
    parallel: int | None = Field(None, ge=1, le=256, description="Parallel slots (-np).")
    batch: int | None = Field(None, ge=1, le=65536, description="Logical batch size (-b).")
    ubatch: int | None = Field(None, ge=1, le=65536, description="Physical batch size (-ub).")
    threads: int | None = Field(None, ge=1, le=1024, description="CPU threads (-t).")
    ctx_checkpoints: int | None = Field(None, ge=0, le=1024, description=(
        "llama.cpp only: context checkpoints kept per slot (--ctx-checkpoints; 0 = none) for sliding-window and "
        "recurrent models, which cannot rewind a prompt otherwise; each is a copy of the slot's window or state "
        "in host RAM (default 32, llama-server's)."))
    temperature: float | None = Field(None, ge=0, le=5, description="Sampling temperature.")
    top_p: float | None = Field(None, ge=0, le=1, description="Nucleus sampling.")
    top_k: int | None = Field(None, ge=0, le=1000, description="Top-k sampling (0 = off).")
    min_p: float | None = Field(None, ge=0, le=1, description="Min-p sampling.")
    repeat_penalty: float | None = Field(None, ge=0, le=5, description="Repetition penalty.")
    tensor_parallel: int | None = Field(None, ge=1, le=64, description="vLLM: --tensor-parallel-size.")
    pipeline_parallel: int | None = Field(None, ge=1, le=64, description="vLLM: --pipeline-parallel-size (nodes).")
    data_parallel: int | None = Field(None, ge=1, le=256, description="vLLM: --data-parallel-size (replicas).")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1, description="vLLM: the fraction of each GPU's "
                                                 "memory it may use (weights, activations, graphs and KV).")
    dtype: Literal["bfloat16", "float16", "float32"] | None = Field(None, description="vLLM: --dtype.")
    logits_all: bool | None = Field(None, description="llama-cpp-python only: keep logits for every token (needed "
                                                      "for logprobs; costs n_ctx × vocabulary × 4 bytes of RAM).")

    @field_validator("quant")
    @classmethod
    def _quant_alias(cls, value: str | None) -> str | None:
        return normal_quant(value)

    @model_validator(mode="after")
    def _ubatch_within_batch(self) -> "Overrides":
        if self.batch is not None and self.ubatch is not None and self.ubatch > self.batch:
            raise ValueError(f"ubatch ({self.ubatch}) is larger than batch ({self.batch}): llama.cpp runs at most "
                             f"batch tokens per step, so it would quietly use ubatch {self.batch}; set ubatch ≤ batch")
        return self


def _context(value: Any) -> Any:
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not 'auto' or a whole number of tokens")
    if not 256 <= value <= MAX_CONTEXT:
        raise ValueError(f"{value} tokens is out of range; use 'auto' or 256 to {MAX_CONTEXT:,}")
    return value


class Setup(Strict):
    """A setup.yaml: what the user wants and where it runs."""

    name: str = Field(description="Slug naming the deployment; becomes file and unit names.",
                      pattern=SLUG.pattern)
    use_case: UseCase = Field(description="What the model is for; drives model choice, context and sampling.")
    experience: Experience = Field("latency", description="What to optimise for.")
    target: Target = Field(description="Where it runs.")
    model: ModelSpec | None = Field(None, description="Which model; chosen from the catalog when left out.")
    context: Annotated[int | Literal["auto"], BeforeValidator(_context)] = Field(
        "auto", description="'auto' (from the use case, capped by the model) or a token count.")
    engine: EngineName = Field("auto", description="auto (the planner picks and says why: vLLM for many "
                               "concurrent users or more than one GPU on a GPU target, else llama.cpp), "
                               + " or ".join(e.summary for e in ENGINES.values()) + ".")
    serve: Serve = Field(Serve(), description="Where the endpoint listens.")
    overrides: Overrides = Field(Overrides(), description="Pin any planned value.")

    @model_validator(mode="after")
    def _cloud_serves_beyond_loopback(self) -> "Setup":
        """A cloud instance's loopback is unreachable from the user: a cloud setup that names no serve.host serves
        on every address, behind the API key apply generates and the security group's allowed_cidrs. An explicit
        loopback host on a cloud target is refused by validate (setup/references.py), at its line."""
        if self.target.is_cloud and "host" not in self.serve.model_fields_set:
            self.serve = Serve(host="0.0.0.0", port=self.serve.port)
        return self

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> Any:
        if isinstance(value, str) and not SLUG.match(value):
            raise ValueError(f"{value!r} is not a slug: lowercase letters, digits and '-', starting with a "
                             "letter or digit, at most 63 characters (it becomes file and unit names)")
        return value


def json_schema() -> dict[str, Any]:
    schema = Setup.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "inferform setup"
    return schema


# --- loading ---------------------------------------------------------------------------------------

def _model_at(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model class that owns the last key of loc, for did-you-mean on unknown fields. A name under
    a mapping of models (a group's `models:`) is skipped like a list index."""
    current: Any = root
    keyed = False
    for part in loc[:-1]:
        if isinstance(part, int) or keyed:
            keyed = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        annotation = current.model_fields[part].annotation
        keyed = getattr(annotation, "__origin__", None) is dict
        current = _unwrap(annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Find the model class inside Optional[...] / list[...] annotations."""
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _unwrap(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """The part of pydantic's loc that indexes the document (drops union/validator tags); a missing key stays."""
    path: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
        elif not (isinstance(node, dict) and i == len(loc) - 1):
            continue
        path.append(part)
    return tuple(path)


def _problem(err: dict[str, Any], located: Located, root: type[BaseModel] | None = None) -> Problem:
    loc = _data_path(err["loc"], located.data)
    dotted = ".".join(str(p) for p in loc) or "(document)"
    line, col = located.where(loc)
    kind = err["type"]
    hint = None
    if kind == "extra_forbidden":
        owner = _model_at(loc, root or Setup)
        valid = list(owner.model_fields) if owner else []
        hint = did_you_mean(str(loc[-1]) if loc else "", valid)
        if hint is None and valid:
            hint = f"valid fields here: {', '.join(valid)}"
        message = f"unknown field {dotted!r}"
    elif kind == "missing":
        message = f"missing required field {dotted!r}"
    elif kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        message = f"{dotted}: {err['input']!r} is not valid"
        hint = f"use one of {expected}"
        if isinstance(err["input"], str):
            options = re.findall(r"'([^']*)'", expected)
            close = did_you_mean(err["input"], options)
            if close:
                hint = f"{close} (valid: {expected})"
    elif kind == "string_pattern_mismatch" and loc == ("name",):
        message = f"name: {err['input']!r} is not a slug"
        hint = "lowercase letters, digits and '-', e.g. coder-4080"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        message = f"{dotted}: {msg}"
        if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            message += f" (got {err['input']!r})"
    return Problem(message, located.file, line, col, hint)


def parse_setup(located: Located) -> Setup:
    """Validate parsed YAML against the Setup model, with every problem located."""
    data = located.data
    if data is None:
        raise InferformError.single("the file is empty; a setup needs at least name, use_case and target",
                                    file=located.file, line=1,
                                    hint="start from setups/demo.yaml (inferform schema prints every field)")
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__} scalar"
        raise InferformError.single(f"the document is {kind}; a setup is a mapping of fields", file=located.file,
                                    line=1, hint="write `name: ...`, `use_case: ...`, `target: ...` at the top level")
    try:
        return Setup.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(e, located) for e in exc.errors(include_url=False)]
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
        raise InferformError(problems) from None


def load_setup_located(path: str) -> tuple[Setup, Located]:
    text = read_text(path)
    located = from_cache(text, path)
    if located is not None:
        return parse_setup(located), located
    located = load_yaml(text, path)
    setup = parse_setup(located)
    remember(text, located)
    return setup, located


def load_setup(path: str) -> Setup:
    return load_setup_located(path)[0]
