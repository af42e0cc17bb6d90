"""`python -m benchmarks [hello|examples] [N]`: run the benchmarks (all by default) and print their tables."""

import asyncio
import sys

from benchmarks import gpu_examples, hello_latency


def main(argv: list[str]) -> None:
    which = argv[0] if argv and not argv[0].isdigit() else "all"
    numbers = [int(a) for a in argv if a.isdigit()]
    if which in ("all", "hello"):
        asyncio.run(hello_latency.run(numbers[0] if numbers else 300))
    if which in ("all", "examples"):
        asyncio.run(gpu_examples.run(numbers[0] if numbers else 30))
    if which not in ("all", "hello", "examples"):
        raise SystemExit(f"unknown benchmark {which!r}: choose hello or examples")


if __name__ == "__main__":
    main(sys.argv[1:])
