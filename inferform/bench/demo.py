"""`make demo`: after `inferform apply setups/demo.yaml`, ask the served model a question through the official
openai client, then measure it against the plan, the way a user would check a fresh deployment.

Run as `python -m inferform.bench.demo [SETUP] [QUESTION]`; errors print like the CLI's (no traceback, exit 1 or 2).
"""

from __future__ import annotations

import sys

from inferform.errors import InferformError

QUESTION = "In two sentences: why does a lighthouse need a keeper?"


def run(setup: str, question: str = QUESTION, *, answer_tokens: int = 128, requests: int = 2,
        max_tokens: int = 64) -> int:
    from inferform.bench.client import ask, measure
    from inferform.bench.target import from_setup
    from inferform.views.bench import show_bench
    from inferform.views.output import console

    target = from_setup(setup)
    print(f"asking {target.endpoint} (openai client): {question}\n")
    answer = ask(target, question, max_tokens=answer_tokens, on_text=lambda text: print(text, end="", flush=True))
    print(f"\n\n({answer.completion_tokens or '?'} tokens in {answer.total_s:.1f} s)\n")
    show_bench(measure(target, requests=requests, max_tokens=max_tokens), console())
    print(f"\nthe server is still running: stop it with  inferform destroy {setup}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    setup = args[0] if args else "setups/demo.yaml"
    try:
        return run(setup, *args[1:2])
    except InferformError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
