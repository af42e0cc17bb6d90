"""The official `replicate` npm client (tests/js, pinned by its package-lock.json) against the platform."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNREFUSED", "ENETUNREACH")


async def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *args, cwd=JS_DIR, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode or 0, out.decode(), err.decode()


def _installed_matches_lock() -> bool:
    """npm ci wipes node_modules, so it runs only when the installed client is not the locked one."""
    lock = json.loads((JS_DIR / "package-lock.json").read_text())
    wanted = lock["packages"]["node_modules/replicate"]["version"]
    installed = JS_DIR / "node_modules" / "replicate" / "package.json"
    return installed.is_file() and json.loads(installed.read_text()).get("version") == wanted


@pytest.fixture(scope="module")
async def js_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run the replicate npm client (tests/js)")
    if not _installed_matches_lock():
        code, out, err = await _run("npm", "ci", "--no-audit", "--no-fund")
        if code != 0 and any(marker in err for marker in NETWORK_ERRORS):
            pytest.skip(f"npm ci could not reach the registry: {err.strip().splitlines()[-1]}")
        assert code == 0, f"npm ci failed:\n{out}\n{err}"
    return JS_DIR / "replicate_client.mjs"


async def test_official_js_client_runs_the_model(platform, js_client: Path) -> None:
    env = {
        **os.environ,
        "COGWHEEL_API_URL": f"{platform.stack.base_url}/v1",
        "REPLICATE_API_TOKEN": platform.token,
        "COGWHEEL_HELLO_VERSION": platform.hello_version,
    }
    code, out, err = await _run("node", str(js_client), env=env, timeout=120)
    assert code == 0, f"node exited {code}:\n{out}\n{err}"
    report = json.loads(out.strip().splitlines()[-1])
    assert report["run_by_model"] == "hello js model"
    assert report["run_by_version"] == "hello js version"
    assert report["created_status"] in ("starting", "processing", "succeeded")
    assert report["waited"] == {"status": "succeeded", "output": "hello js poll"}
    assert report["fetched"]["id"] == report["created_id"]
    assert report["fetched"]["output"] == "hello js poll"
    assert report["fetched"]["get_url"] == f"{platform.stack.base_url}/v1/predictions/{report['created_id']}"
    assert report["created_id"] in report["listed_ids"]
    assert report["model"] == {"owner": "cogwheel", "name": "hello-world", "latest_version": platform.hello_version}
    assert report["missing_model_status"] == 404
    assert report["missing_prediction_status"] == 404
    assert report["bad_token_status"] == 401
