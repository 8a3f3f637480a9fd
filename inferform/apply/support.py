"""What apply can make real today, checked before anything is diffed, rendered or run.

Why a check of its own: the planner plans more than apply serves yet (vLLM plans, issue 18), and a plan that apply
would half-run (no checkpoint fetch, no vLLM launch) must be refused at once, with nothing changed.
"""

from inferform.errors import InferformError
from inferform.plan import Plan


def check_appliable(plan: Plan, setup_file: str) -> None:
    if plan.vllm is not None:
        raise InferformError.single("this setup plans vLLM, and applying vLLM plans is not built yet (issue 18: "
                                    "the model role's checkpoint fetch and the service role's vLLM launch come "
                                    "next); nothing was changed", file=setup_file,
                                    hint="`inferform plan` shows the vLLM plan; set engine: llama.cpp to apply "
                                         "with llama-server now")
