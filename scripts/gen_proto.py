"""Regenerate libs/pb from protos/ (protoc + import fix-up), deterministically."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "protos"
DEFAULT_OUT = REPO / "libs" / "pb"
PACKAGE = "libs.pb"
HEADER = "# DO NOT EDIT. Regenerate with `make proto` (scripts/gen_proto.py) from protos/.\n"
GENERATED_SUFFIXES = (".py", ".pyi")

# protoc emits imports rooted at the proto package (`from cogwheel.x.v1 import y_pb2`); `cogwheel`
# is also our CLI package, so rewrite them to live under libs.pb.
_FROM_IMPORT = re.compile(r"^(\s*)from ([A-Za-z_][\w.]*) import ", re.MULTILINE)
_PLAIN_IMPORT = re.compile(r"^(\s*)import ([A-Za-z_][\w.]*)(\s+as\s+\w+)?\s*$", re.MULTILINE)


def proto_files(root: Path) -> list[Path]:
    """All .proto files under root, in a stable order."""
    return sorted(p for p in root.rglob("*.proto") if p.is_file())


def run_protoc(root: Path, out: Path) -> None:
    """Run grpc_tools.protoc over every proto under root into out."""
    protos = [str(p.relative_to(root)) for p in proto_files(root)]
    if not protos:
        raise SystemExit(f"no .proto files under {root}")
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{root}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    subprocess.run(cmd, check=True, cwd=root)


def local_roots(out: Path) -> set[str]:
    """Top-level package names produced by protoc (e.g. {"cogwheel"})."""
    return {p.name for p in out.iterdir() if p.is_dir()}


def fix_imports(text: str, roots: set[str]) -> str:
    """Prefix imports of generated modules with the libs.pb package."""

    def sub_from(m: re.Match[str]) -> str:
        mod = m.group(2)
        if mod.split(".", 1)[0] not in roots:
            return m.group(0)
        return f"{m.group(1)}from {PACKAGE}.{mod} import "

    def sub_plain(m: re.Match[str]) -> str:
        mod = m.group(2)
        if mod.split(".", 1)[0] not in roots:
            return m.group(0)
        alias = m.group(3) or f" as {mod.rsplit('.', 1)[-1]}"
        return f"{m.group(1)}import {PACKAGE}.{mod}{alias}"

    return _PLAIN_IMPORT.sub(sub_plain, _FROM_IMPORT.sub(sub_from, text))


def postprocess(out: Path) -> None:
    """Fix imports, add headers and __init__.py files to a fresh protoc output tree."""
    roots = local_roots(out)
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.suffix in GENERATED_SUFFIXES:
            text = fix_imports(path.read_text(encoding="utf-8"), roots)
            path.write_text(HEADER + text, encoding="utf-8")
    for directory in [out, *sorted(p for p in out.rglob("*") if p.is_dir())]:
        init = directory / "__init__.py"
        if not init.exists():
            init.write_text(HEADER, encoding="utf-8")


def generate(out: Path, root: Path = PROTO_ROOT) -> None:
    """Replace out with freshly generated, import-fixed stubs for every proto under root."""
    with tempfile.TemporaryDirectory(prefix="cogwheel-pb-") as tmp:
        staging = Path(tmp) / "pb"
        staging.mkdir()
        run_protoc(root, staging)
        postprocess(staging)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(staging, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output package directory")
    parser.add_argument("--protos", type=Path, default=PROTO_ROOT, help="proto include root")
    args = parser.parse_args(argv)
    generate(args.out.resolve(), args.protos.resolve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
