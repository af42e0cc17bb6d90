"""`python -m benchmarks [hello [N] | throughput [N] | webhooks | examples [N] | scheduling]`: run the named
benchmark (all by default) and print its table."""

import asyncio
import sys

from benchmarks import gpu_examples, hello_latency, scheduling, throughput, webhooks

BENCHMARKS = ("hello", "throughput", "webhooks", "examples", "scheduling")


def main(argv: list[str]) -> None:
    # A bare number keeps its old meaning: hello-world requests per path.
    which = argv[0] if argv and not argv[0].isdigit() else "all"
    numbers = [int(a) for a in argv if a.isdigit()]
    if which not in ("all", *BENCHMARKS):
        raise SystemExit(f"unknown benchmark {which!r}; choose one of {', '.join(BENCHMARKS)}")
    if which in ("all", "hello"):
        asyncio.run(hello_latency.run(numbers[0] if numbers else 300))
    if which in ("all", "throughput"):
        asyncio.run(throughput.run(numbers[0] if numbers else 2000))
    if which in ("all", "webhooks"):
        asyncio.run(webhooks.run())
    if which in ("all", "examples"):
        asyncio.run(gpu_examples.run(numbers[0] if numbers else 30))
    if which in ("all", "scheduling"):
        asyncio.run(scheduling.run())


if __name__ == "__main__":
    main(sys.argv[1:])
