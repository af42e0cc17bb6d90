"""The README's quick start, as a new user follows it: `eval $(cogwheel env)` in a shell, then its Python
examples as written (the FileOutput one as Replicate's docs write it), the npm client's `await output.blob()`
and curl, against a `cogwheel up`-style stack serving HTTPS with its local CA."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from cogwheel.state import State

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"
PNG = b"\x89PNG\r\n\x1a\n"
# Set by `cogwheel env`; the shell the test starts must not have them from elsewhere.
CLIENT_ENV = ("REPLICATE_BASE_URL", "REPLICATE_API_TOKEN", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS",
              "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")


@pytest.fixture(scope="module")
def platform_tls() -> bool:
    return True


@pytest.fixture(scope="module")
def platform_replicas() -> dict[str, int]:
    return {}


def readme_python_block(after: str) -> str:
    """The first ```python block of the README after the line containing `after`."""
    text = README.read_text()
    start = text.index(after)
    match = re.compile(r"```python\n(.*?)```", re.S).search(text, start)
    assert match is not None, f"no python block after {after!r} in README.md"
    return match.group(1)


def test_the_readme_file_output_example_is_the_one_of_replicates_docs() -> None:
    # replicate-python's README ("FileOutput"): `with open('output.bin', 'wb') as file: file.write(output.read())`
    # and `print(output.url)`, on the output of `replicate.run(...)`.
    code = readme_python_block("Models that return files")
    assert "import replicate\n" in code
    assert re.search(r"^output = replicate\.run\(", code, re.M)
    assert 'with open("output.png", "wb") as file:\n    file.write(output.read())\n' in code
    assert "print(output.url)" in code
    assert "base_url" not in code and "Client(" not in code  # no client setting changed


async def _shell(script: str, env: dict[str, str], cwd: Path, timeout: float = 300) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode or 0, out.decode(), err.decode()


async def test_quick_start_in_a_shell_with_cogwheel_env(platform, js_client: Path, tmp_path: Path) -> None:
    await platform.push("cogwheel", "image-generator", EXAMPLES / "image-generator")
    # What `cogwheel up` leaves for `cogwheel env`: the running installation's URL, token and trust store.
    state_dir = tmp_path / "data"
    State(base_url=platform.stack.base_url, ca_bundle=str(platform.stack.tls.bundle), token=platform.token,
          supervisor_pid=os.getpid()).save(state_dir)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cogwheel = bin_dir / "cogwheel"
    cogwheel.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -c 'from cogwheel.cli import main; main()' "
                        '"$@"\n')
    cogwheel.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / "hello.py").write_text(readme_python_block("The Python client works too"))
    (work / "files.py").write_text(readme_python_block("Models that return files"))
    env = {name: value for name, value in os.environ.items() if name not in CLIENT_ENV}
    env |= {"PATH": f"{bin_dir}:{os.environ['PATH']}", "COGWHEEL_DATA_DIR": str(state_dir),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    python = shlex.quote(sys.executable)
    node_script = shlex.quote(str(js_client.parent / "readme_quick_start.mjs"))
    script = f"""
eval $(cogwheel env)
{python} hello.py > hello.out
{python} files.py > files.out
COGWHEEL_OUT={shlex.quote(str(work / "output-js.png"))} node {node_script} > js.out
curl -s -X POST -H "Authorization: Bearer $REPLICATE_API_TOKEN" -H 'Content-Type: application/json' \\
  -H 'Prefer: wait' -d '{{"input":{{"text":"world"}}}}' \\
  $REPLICATE_BASE_URL/v1/models/cogwheel/hello-world/predictions > curl.out
"""
    code, out, err = await _shell(script, env, work)
    assert code == 0, f"exit {code}\n{out}\n{err}"

    assert (work / "hello.out").read_text().strip() == "hello world"
    png = (work / "output.png").read_bytes()
    assert png.startswith(PNG)
    assert (work / "files.out").read_text().strip().startswith(f"{platform.stack.base_url}/v1/outputs/")
    report = json.loads((work / "js.out").read_text().strip().splitlines()[-1])
    assert report["kind"] == "FileOutput"
    assert report["url"].startswith(f"{platform.stack.base_url}/v1/outputs/")
    assert report["type"] == "image/png"
    assert (work / "output-js.png").read_bytes() == png  # the same seed gives the same picture
    assert base64.b64decode(report["streamed"]) == png
    assert json.loads((work / "curl.out").read_text())["output"] == "hello world"
