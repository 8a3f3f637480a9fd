"""setup.yaml → Plan: the one path from a setup file to a plan, for every caller (CLI, bench, tests).

Load and check the setup, resolve the hardware it runs on, read the model's GGUF header when the file is already
here, and plan: local and SSH targets with the planner, cloud targets with the instance planner, which chooses the
instance type when it is 'auto' and prices it (live only with AWS credentials). Imports are inside the functions so
`inferform validate` and `--help` do not pay for the planner.
"""

from typing import TYPE_CHECKING, Any

from inferform.errors import InferformError

if TYPE_CHECKING:
    from inferform.hardware.profile import HardwareProfile
    from inferform.plan import Plan
    from inferform.planner.search import Choice
    from inferform.setup.spec import Setup


def checked(setup_path: str):
    """The setup, loaded and checked against the catalogs, with where each value sits in the file."""
    from inferform.setup.kind import is_group
    from inferform.setup.references import check_references
    from inferform.setup.spec import load_setup_located

    if is_group(setup_path):
        raise InferformError.single("is a group file (several setups behind one router); this command takes one "
                                    "setup", file=setup_path,
                                    hint=f"give one member's setup file, or see a member with `inferform plan "
                                         f"{setup_path} --member NAME`")
    spec, located = load_setup_located(setup_path)
    check_references(spec, located)
    return spec, located


def hardware(setup_path: str, *, choose: bool = True) -> "tuple[Setup, HardwareProfile | None]":
    """The setup and the hardware it runs on. A cloud setup's `instance_type: auto` is chosen here (catalog
    prices) when `choose`, or left None for the instance planner to choose and price."""
    from inferform.hardware.detect import detect
    from inferform.hardware.resolve import resolve_hardware

    spec, located = checked(setup_path)
    hw = resolve_hardware(spec, located, detect)
    if hw is None and choose:
        from inferform.cloud.prices import price_book
        from inferform.planner.instances import choose_instance

        hw = choose_instance(spec, prices=price_book()).hardware
    return spec, hw


def plan_setup(setup_path: str, *, offline: bool = False) -> "tuple[Setup, Plan]":
    """The setup and its plan. Its argv names ${INFERFORM_MODEL_DIR}: the model role places the file there."""
    from inferform.gguf import read_gguf
    from inferform.planner.compose import make_plan
    from inferform.setup.sources import local_gguf

    spec, hw = hardware(setup_path, choose=False)
    vllm = _vllm_plan(spec, hw, setup_path)
    if vllm is not None:
        return spec, _key_path_resolved(vllm, setup_path)
    path = local_gguf(spec.model.file if spec.model else None, setup_path)
    gguf = read_gguf(path) if path else None
    if spec.target.is_cloud:
        from inferform.cloud.prices import price_book
        from inferform.planner.instance_plan import plan_cloud

        return spec, plan_cloud(spec, hw, gguf, price_book(offline=offline))
    return spec, _key_path_resolved(make_plan(spec, hw, gguf), setup_path)


def _vllm_plan(spec: "Setup", hw: "HardwareProfile | None", setup_path: str) -> "Plan | None":
    """The vLLM plan when the setup names vLLM, or when `engine: auto` should run it (planner/engine_choice.py);
    None: llama.cpp plans it. An auto setup that vLLM cannot fit falls back to llama.cpp."""
    if spec.engine not in ("vllm", "auto") or hw is None:
        return None
    from inferform.planner.engine_choice import wants_vllm

    why = wants_vllm(spec, hw)
    if spec.engine == "auto" and why is None:
        return None
    from inferform.planner.vllm_plan import make_vllm_plan

    try:
        return make_vllm_plan(spec, hw, setup_path, why or "")
    except InferformError:
        if spec.engine == "vllm":
            raise
        return None


def _key_path_resolved(plan: "Plan", setup_path: str) -> "Plan":
    """An ssh key file is named relative to the setup file (or with ~): the plan carries the path apply opens."""
    from pathlib import Path

    ssh = plan.target.ssh
    if ssh is None or not ssh.key_file:
        return plan
    key = Path(ssh.key_file).expanduser()
    if not key.is_absolute():
        key = Path(setup_path).resolve().parent / key
    target = plan.target.model_copy(update={"ssh": ssh.model_copy(update={"key_file": str(key)})})
    return plan.model_copy(update={"target": target})


def fitting(setup_path: str) -> "list[dict[str, Any]]":
    """`models --fits`: every catalog model suited to the setup's use case, each planned on the setup's hardware,
    one row per model (its best configuration), ranked by the experience's objective; none when nothing fits."""
    from inferform.planner.search import search

    spec, hw = hardware(setup_path)
    open_setup = spec.model_copy(update={"model": None, "context": "auto"})
    try:
        best, others = search(open_setup, hw)
    except InferformError:
        return []
    return _fits_rows([best, *others])


def _fits_rows(choices: "list[Choice]") -> "list[dict[str, Any]]":
    seen, rows = set(), []
    for c in choices:
        model_id = c.name
        if model_id in seen:
            continue
        seen.add(model_id)
        cfg, mem = c.placement.cfg, c.placement.mem
        rows.append({"id": model_id, "quant": c.model.quant, "context": c.context_per_slot,
                     "n_gpu_layers": cfg.n_gpu_layers, "n_cpu_moe": cfg.n_cpu_moe,
                     "gpu_bytes": mem.gpu.total, "host_bytes": mem.host.total,
                     "generate_tps": round(c.speed.generate_tps, 1), "prompt_tps": round(c.speed.prompt_tps, 1),
                     "aggregate_generate_tps": round(c.speed.aggregate_generate_tps, 1),
                     "parallel": cfg.parallel, "cache_type": cfg.cache_type_k,
                     "quality": None if c.quality is None else round(c.quality, 1),
                     "objective": round(c.value.value, 2), "above_floor": c.value.above_floor,
                     "where": c.placement.why})
    return rows


def plan_group_setup(group_path: str) -> "tuple[Any, Any]":
    """A group file and its GroupPlan: the hardware resolved once for the group's target, each member planned on
    it as if alone (reading its GGUF header when the file is here), then the co-residency proof."""
    from inferform.gguf import read_gguf
    from inferform.hardware.detect import detect
    from inferform.hardware.resolve import resolve_hardware
    from inferform.planner.compose import make_plan
    from inferform.planner.group import plan_group
    from inferform.setup.group import load_group
    from inferform.setup.sources import local_gguf

    loaded = load_group(group_path)
    first = loaded.members[0]
    hw = resolve_hardware(first.setup, loaded.located, detect)
    ggufs = {}
    for m in loaded.members:
        path = local_gguf(m.setup.model.file if m.setup.model else None, m.file)
        ggufs[m.name] = read_gguf(path) if path else None

    def planned(m, on) -> "Plan":
        try:
            return _key_path_resolved(make_plan(m.setup, on, ggufs[m.name]), group_path)
        except InferformError as exc:
            raise InferformError([p._replace(message=f"member {m.name!r}: {p.message}") for p in exc.problems],
                                 exc.exit_code) from None

    plans = {m.name: planned(m, hw) for m in loaded.members}
    shared: dict[str, float] = {}  # member → its generation tok/s when planned alone
    wanted = loaded.group.policy.max_loaded
    from inferform.planner.group import over_share, proven, shared_hardware

    n = min(wanted, len(loaded.members)) if isinstance(wanted, int) else 0
    if n > 1 and proven(hw, list(plans.values())) < n:
        # an explicit max_loaded that the members planned alone cannot meet: those whose size the planner chose
        # (auto context) and that take more than their share are planned again within it; pinned ones stay
        share = shared_hardware(hw, n)
        for m in loaded.members:
            auto = m.setup.context == "auto" and m.setup.overrides.n_ctx is None
            if auto and over_share(plans[m.name], share):
                shared[m.name] = plans[m.name].speed.generate_tps
                plans[m.name] = planned(m, share)
    return loaded, plan_group(loaded, hw, plans, shared)


def deployment_name(path: str) -> str:
    """The name a setup or group file deploys under (state, unit and file names)."""
    from inferform.setup.kind import is_group

    if is_group(path):
        from inferform.setup.group import load_group

        return load_group(path).group.name
    from inferform.setup.spec import load_setup

    return load_setup(path).name
