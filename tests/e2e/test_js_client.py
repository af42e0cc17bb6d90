"""The official `replicate` npm client (tests/js, pinned by its package-lock.json) against the platform."""

from __future__ import annotations

import json
import os
from pathlib import Path


async def test_official_js_client_runs_the_model(platform, js_client: Path, node) -> None:
    env = {
        **os.environ,
        "COGWHEEL_API_URL": f"{platform.stack.base_url}/v1",
        "REPLICATE_API_TOKEN": platform.token,
        "COGWHEEL_HELLO_VERSION": platform.hello_version,
    }
    code, out, err = await node(str(js_client), env=env, timeout=120)
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
    # Idempotency-Key sent through the client's `fetch` option (README): the retry gets the first prediction,
    # another body with the same key is refused.
    idempotent = report["idempotent"]
    assert idempotent["first_id"] and idempotent["again_id"] == idempotent["first_id"], idempotent
    assert idempotent["other_body_status"] == 422, idempotent
