"""What apply can make real today, checked before anything is diffed, rendered or run.

Why a check of its own: the planner plans more than apply serves yet (a vLLM plan across several nodes, issue 18),
and plans for hardware that is not there (a setup may describe GPUs to plan for them); a plan that apply would
half-run, or that would spend minutes installing a CUDA engine on a machine without a GPU, is refused at once,
with nothing changed.
"""

from inferform.errors import InferformError
from inferform.plan import Plan


def vllm_gpus(plan: Plan) -> int:
    """NVIDIA GPUs a vLLM plan uses on each node (0 for vllm-cpu)."""
    v = plan.vllm
    if v is None or v.device != "cuda":
        return 0
    return max(1, v.tensor_parallel * v.pipeline_parallel * v.data_parallel // max(v.nnodes, 1))


def check_appliable(plan: Plan, setup_file: str) -> None:
    if plan.vllm is not None and plan.vllm.nnodes > 1:
        raise InferformError.single(f"this setup plans vLLM across {plan.vllm.nnodes} nodes, and apply starts "
                                    "vLLM on one host so far; nothing was changed", file=setup_file,
                                    hint="`inferform plan` shows the multi-node plan; a setup whose model fits "
                                         "one node's GPUs applies now")
    need = vllm_gpus(plan)
    if need and plan.target.kind == "local":
        from inferform.hardware.detect import NVIDIA_QUERY, parse_nvidia_smi, run_command

        found = run_command(NVIDIA_QUERY)
        have = len(parse_nvidia_smi(found)) if found else 0
        if have < need:
            raise InferformError.single(
                f"this vLLM plan runs on {need} NVIDIA GPU(s) and this machine has "
                f"{have if found else 'none (nvidia-smi absent or failing)'}; nothing was changed", file=setup_file,
                hint="the setup's target.hardware describes GPUs this machine does not have: plan with it, apply "
                     "where they are (target.kind: ssh), or leave target.hardware out to plan for this machine")
