"""`python -m benchmarks`: run every benchmark and print its table."""

import asyncio
import sys

from benchmarks import hello_latency


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    asyncio.run(hello_latency.run(requests))


if __name__ == "__main__":
    main()
