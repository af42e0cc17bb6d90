"""`python -m benchmarks [hello [N] | webhooks]`: run the named benchmark (all of them by default) and print its table."""

import asyncio
import sys

from benchmarks import hello_latency, webhooks


def main() -> None:
    args = sys.argv[1:]
    # A bare number keeps its old meaning: hello-world requests per path.
    if args and args[0].isdigit():
        args = ["hello", *args]
    which = args[0] if args else "all"
    if which in ("hello", "all"):
        requests = int(args[1]) if which == "hello" and len(args) > 1 else 300
        asyncio.run(hello_latency.run(requests))
    if which in ("webhooks", "all"):
        asyncio.run(webhooks.run())
    if which not in ("hello", "webhooks", "all"):
        raise SystemExit(f"unknown benchmark {which!r}; choose hello or webhooks")


if __name__ == "__main__":
    main()
