"""The web interface in headless Chromium against the real stack: log in, run models from their forms, watch
predictions live, cancel from the dashboard, share, and never talk to another origin.

One stack and one browser for the whole module; every page visited is screenshotted into the artifacts
directory (`COGWHEEL_TEST_ARTIFACTS`, else a pytest temporary directory), printed at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from libs.infra import create_database, drop_database
from libs.pb.cogwheel.registry.v1 import registry_pb2, registry_pb2_grpc
from libs.rpc import create_channel

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = "/usr/bin/chromium"
EXAMPLES = Path(__file__).parents[2] / "examples"
PREDICTORS = Path(__file__).parents[1] / "fixtures" / "predictors"
WAIT_MS = 90_000

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")


@pytest.fixture(scope="module")
def database_url(database_url: str) -> Iterator[str]:
    """A database of the module's own: the pages list models and predictions, which other modules add to."""
    url = create_database(database_url)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="module")
def platform_replicas() -> dict[str, int]:
    # Two runners: a node runs one version at a time, and a sleeping prediction must not hold up the others.
    return {"scheduler": 1, "runner": 2, "gateway": 1}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("COGWHEEL_TEST_ARTIFACTS")
    directory = Path(configured) / "web" if configured else tmp_path_factory.mktemp("web-artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
async def models(platform: Any) -> dict[str, str]:
    sources = {
        "image": ("image-generator", EXAMPLES / "image-generator"),
        "text": ("text-generator", EXAMPLES / "text-generator"),
        "sleeper": ("sleeper", PREDICTORS / "sleeper"),
        "kitchen_sink": ("kitchen-sink", PREDICTORS / "kitchen_sink"),
        # Paced tokens: the example text generator finishes 2000 characters in a fifth of a second on a CPU,
        # faster than any page could watch it grow.
        "tokens": ("tokens", PREDICTORS / "tokens"),
        "media": ("media", PREDICTORS / "media"),
    }
    pushed = await asyncio.gather(*(platform.push("cogwheel", name, path) for name, path in sources.values()))
    return dict(zip(sources, pushed, strict=True))


class Browser:
    """Chromium with every request any of its pages made, to check that none left the origin."""

    def __init__(self, browser: Any, origin: str, artifacts: Path) -> None:
        self.browser = browser
        self.origin = origin
        self.artifacts = artifacts
        self.requests: list[str] = []
        self.errors: list[str] = []

    async def context(self, **options: Any) -> Any:
        context = await self.browser.new_context(viewport={"width": 1280, "height": 900}, **options)
        context.on("request", lambda request: self.requests.append(request.url))
        context.on("page", self._watch)
        context.set_default_timeout(WAIT_MS)
        return context

    def _watch(self, page: Any) -> None:
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        # What the Content-Security-Policy refused (an inline script or style, another origin) is a defect too.
        page.on("console", lambda message: self.errors.append(message.text)
                if message.type == "error" and "Refused to" in message.text else None)

    async def shot(self, page: Any, name: str) -> None:
        await page.screenshot(path=str(self.artifacts / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
async def chromium(platform: Any, artifacts: Path) -> AsyncIterator[Browser]:
    # Models start their worker (importing torch) on first use: assertions wait as long as actions do.
    playwright_api.expect.set_options(timeout=WAIT_MS)
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield Browser(browser, platform.stack.base_url, artifacts)
        finally:
            await browser.close()
    print(f"\nweb screenshots: {artifacts}")


@pytest.fixture(scope="module")
async def session(chromium: Browser, platform: Any) -> AsyncIterator[Any]:
    """A browser context logged in through the login form."""
    context = await chromium.context()
    page = await context.new_page()
    origin = platform.stack.base_url
    await page.goto(f"{origin}/login?next=/dashboard")
    await chromium.shot(page, "login")
    await page.get_by_label("API token").fill("cwk_not-a-real-token")
    await page.get_by_role("button", name="Log in").click()
    await playwright_api.expect(page.get_by_role("alert")).to_contain_text("not valid")
    await page.get_by_label("API token").fill(platform.token)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{origin}/dashboard")
    await page.close()
    try:
        yield context
    finally:
        await context.close()


async def test_session_cookie_keeps_the_token_from_page_scripts(session: Any, platform: Any) -> None:
    cookies = await session.cookies()
    [cookie] = [c for c in cookies if c["name"] == "cogwheel_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert platform.token not in cookie["value"]
    page = await session.new_page()
    await page.goto(platform.stack.base_url + "/")
    assert "cogwheel_session" not in await page.evaluate("document.cookie")
    assert platform.token not in await page.content()
    await page.close()


async def test_log_out_ends_the_session(chromium: Browser, platform: Any) -> None:
    context = await chromium.context()
    try:
        page = await context.new_page()
        origin = platform.stack.base_url
        await page.goto(f"{origin}/login?next=/account")
        await page.get_by_label("API token").fill(platform.token)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(f"{origin}/account")
        assert [c for c in await context.cookies() if c["name"] == "cogwheel_session"]
        await page.get_by_role("button", name="Log out").click()
        await page.wait_for_url(f"{origin}/login")
        assert [c for c in await context.cookies() if c["name"] == "cogwheel_session"] == []
        await playwright_api.expect(page.get_by_role("link", name="Dashboard")).to_have_count(0)
        # Pages of private data send the visitor to the login form again, remembering where they were going.
        await page.goto(f"{origin}/account")
        await page.wait_for_url(re.compile(re.escape(f"{origin}/login?next=") + ".*account"))
        await playwright_api.expect(page.get_by_label("API token")).to_be_visible()
    finally:
        await context.close()


async def test_run_hello_world_from_its_form(
    session: Any, chromium: Browser, platform: Any, models: dict[str, str]
) -> None:
    async with platform.client() as client:
        created = await client.post("/v1/models", json={"owner": "cogwheel", "name": "drafts",
                                                         "visibility": "private", "hardware": "cpu"})
        assert created.status_code in (201, 409), created.text
        patched = await client.patch("/v1/models/cogwheel/hello-world", json={
            "description": "Greets whoever you name", "readme": "# Greeter\n\nSays **hello**.\n\n<script>x</script>"})
        assert patched.status_code == 200, patched.text
    page = await session.new_page()
    await page.goto(platform.stack.base_url + "/")
    await playwright_api.expect(page.get_by_role("link", name="cogwheel/hello-world")).to_be_visible()
    # The account's own models come first, private ones included.
    mine = page.locator("section", has=page.get_by_role("heading", name="Your models"))
    await playwright_api.expect(mine.get_by_role("link", name="cogwheel/drafts")).to_be_visible()
    await chromium.shot(page, "explore")
    await page.get_by_role("link", name="cogwheel/hello-world").click()
    await playwright_api.expect(page.locator(".lead")).to_have_text("Greets whoever you name")
    readme = page.locator(".readme")
    await playwright_api.expect(readme.get_by_role("heading", name="Greeter")).to_be_visible()
    await playwright_api.expect(readme.locator("strong")).to_have_text("hello")
    await playwright_api.expect(readme).to_contain_text("<script>x</script>")
    await page.get_by_label("text", exact=True).fill("browser")
    # The snippets carry exactly the form's inputs.
    await playwright_api.expect(page.locator("#snippet-python")).to_contain_text('"text": "browser"')
    await page.get_by_role("tab", name="JavaScript").click()
    await playwright_api.expect(page.locator("#snippet-javascript")).to_contain_text('"text": "browser"')
    await playwright_api.expect(page.locator("#snippet-javascript")).to_contain_text(
        'replicate.run("cogwheel/hello-world"')
    await page.get_by_role("tab", name="curl").click()
    await playwright_api.expect(page.locator("#snippet-curl")).to_contain_text('"input":{"text":"browser"}')
    # Keyboard only: the Run button is reachable and pressing Enter on it runs the model.
    await page.get_by_role("button", name="Run").focus()
    await page.keyboard.press("Enter")
    await playwright_api.expect(page.locator("#output")).to_have_text("hello browser")
    await playwright_api.expect(page.locator("#status")).to_have_text("succeeded")
    await playwright_api.expect(page.locator("#runtime")).to_contain_text("Ran for")
    await chromium.shot(page, "model-hello-world")
    # The prediction page of what just ran says it came from the web.
    await page.get_by_role("link", name="Open prediction page").click()
    await playwright_api.expect(page.locator("#output")).to_have_text("hello browser")
    await playwright_api.expect(page.locator(".meta")).to_contain_text("source web")
    await page.close()


async def test_code_snippets_run_with_exactly_the_inputs_in_the_form(
    session: Any, platform: Any, models: dict[str, str]
) -> None:
    """The Python and curl snippets, copied from the page and run as they are, make the form's prediction."""
    page = await session.new_page()
    await page.goto(platform.stack.base_url + "/cogwheel/hello-world")
    await page.get_by_label("text", exact=True).fill("snippet")
    python = await page.locator("#snippet-python").text_content()
    curl = await page.locator("#snippet-curl").text_content()
    env = {**os.environ, "REPLICATE_API_TOKEN": platform.token, "REPLICATE_BASE_URL": platform.stack.base_url}
    ran = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", python], env=env, capture_output=True,
                                  text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "hello snippet"
    ran = await asyncio.to_thread(subprocess.run, ["bash", "-c", curl], env=env, capture_output=True, text=True,
                                  timeout=120)
    assert ran.returncode == 0, ran.stderr
    made = json.loads(ran.stdout)
    assert made["input"] == {"text": "snippet"} and made["output"] == "hello snippet", made
    # A form of several inputs: the snippet carries each of them, typed, and nothing else.
    await page.goto(platform.stack.base_url + "/cogwheel/image-generator")
    await page.get_by_label("seed", exact=True).fill("11")
    await page.get_by_label("width", exact=True).fill("64")
    curl = await page.locator("#snippet-curl").text_content()
    body = json.loads(re.search(r"-d '(.*)' \\", curl).group(1))
    assert body["input"] == {"seed": 11, "width": 64, "height": 256}, body
    assert body["version"] == f"cogwheel/image-generator:{models['image']}"
    await page.get_by_label("seed", exact=True).fill("")
    curl = await page.locator("#snippet-curl").text_content()
    assert json.loads(re.search(r"-d '(.*)' \\", curl).group(1))["input"] == {"width": 64, "height": 256}
    await page.close()


async def test_the_playground_by_keyboard_alone(session: Any, platform: Any) -> None:
    """Tab to the field, type, Tab to Run, Enter; the snippet tabs follow the arrow keys."""
    page = await session.new_page()
    await page.goto(platform.stack.base_url + "/cogwheel/hello-world")

    async def tab_to(element_id: str) -> None:
        for _ in range(60):
            if await page.evaluate("document.activeElement && document.activeElement.id") == element_id:
                return
            await page.keyboard.press("Tab")
        raise AssertionError(f"Tab never reached #{element_id}")

    await tab_to("input-text")
    await page.keyboard.press("ControlOrMeta+a")
    await page.keyboard.type("keys")
    await tab_to("run")
    await page.keyboard.press("Enter")
    await playwright_api.expect(page.locator("#output")).to_have_text("hello keys")
    await tab_to("tab-python")
    await page.keyboard.press("ArrowRight")
    await playwright_api.expect(page.get_by_role("tab", name="JavaScript")).to_have_attribute("aria-selected", "true")
    await playwright_api.expect(page.locator("#snippet-javascript")).to_be_visible()
    await playwright_api.expect(page.get_by_role("tab", name="JavaScript")).to_be_focused()
    await page.close()


async def test_search_and_collections(session: Any, chromium: Browser, platform: Any, models: dict[str, str]) -> None:
    channel = create_channel(platform.stack.registry_addr, default_timeout=30)
    try:
        await registry_pb2_grpc.RegistryServiceStub(channel).PutCollection(registry_pb2.PutCollectionRequest(
            slug="pictures", name="Pictures", description="Models that draw", models=["cogwheel/image-generator"]))
    finally:
        await channel.close()
    page = await session.new_page()
    await page.goto(platform.stack.base_url + "/")
    await page.get_by_role("link", name="Pictures").click()
    await playwright_api.expect(page.get_by_role("heading", level=1)).to_have_text("Pictures")
    await playwright_api.expect(page.locator(".model-card")).to_have_count(1)
    await playwright_api.expect(page.get_by_role("link", name="cogwheel/image-generator")).to_be_visible()
    await page.get_by_role("searchbox", name="Search models").fill("text-gen")
    await page.keyboard.press("Enter")
    await playwright_api.expect(page.get_by_role("link", name="cogwheel/text-generator")).to_be_visible()
    await playwright_api.expect(page.get_by_role("link", name="cogwheel/image-generator")).to_have_count(0)
    await chromium.shot(page, "explore-search")
    await page.close()


async def test_image_model_output_loads(session: Any, chromium: Browser, platform: Any, models: dict[str, str]) -> None:
    page = await session.new_page()
    await page.goto(platform.stack.base_url + "/cogwheel/image-generator")
    # Each input's description, default and bounds are shown beside it; the versions are listed.
    await playwright_api.expect(page.locator("#hint-width")).to_contain_text("Width in pixels")
    await playwright_api.expect(page.locator("#hint-width")).to_contain_text("Default: 256")
    await playwright_api.expect(page.locator("#hint-width")).to_contain_text("min 16 max 2048")
    await playwright_api.expect(page.get_by_label("width", exact=True)).to_have_value("256")
    versions = page.locator("section", has=page.get_by_role("heading", name="Versions"))
    await playwright_api.expect(versions.get_by_role("link", name=models["image"][:12])).to_be_visible()
    await page.get_by_label("seed", exact=True).fill("7")
    await page.get_by_label("width", exact=True).fill("320")
    await page.get_by_role("button", name="Run").click()
    image = page.locator("#output img")
    await playwright_api.expect(image).to_be_visible()
    await page.wait_for_function("document.querySelector('#output img').complete"
                                 " && document.querySelector('#output img').naturalWidth === 320", timeout=WAIT_MS)
    await chromium.shot(page, "model-image-generator")
    await page.set_viewport_size({"width": 390, "height": 844})
    await chromium.shot(page, "model-image-generator-phone")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px wide)"
    await page.close()


async def test_streamed_text_grows_before_completion(
    session: Any, chromium: Browser, platform: Any, models: dict[str, str]
) -> None:
    page = await session.new_page()
    await page.goto(platform.stack.base_url + "/cogwheel/tokens")
    await page.get_by_label("n", exact=True).fill("40")
    await page.get_by_label("delay", exact=True).fill("0.1")
    await page.get_by_role("button", name="Run").click()
    # Text shows up while the prediction is still running, then keeps growing.
    growing = (
        "() => { const out = document.querySelector('#output .text-output');"
        " const status = document.querySelector('#status').dataset.status;"
        " return out && out.textContent.length > {n} && status === 'processing'; }"
    )
    await page.wait_for_function(growing.replace("{n}", "0"), timeout=WAIT_MS)
    first = len(await page.locator("#output .text-output").inner_text())
    await page.wait_for_function(growing.replace("{n}", str(first)), timeout=WAIT_MS)
    await chromium.shot(page, "model-tokens-streaming")
    await playwright_api.expect(page.locator("#status")).to_have_text("succeeded")
    final = await page.locator("#output .text-output").inner_text()
    assert len(final) > first
    await page.close()


async def test_audio_and_video_outputs_play(
    session: Any, chromium: Browser, platform: Any, models: dict[str, str]
) -> None:
    page = await session.new_page()
    await page.goto(platform.stack.base_url + "/cogwheel/media")
    await page.get_by_label("kind", exact=True).select_option("audio")
    await page.get_by_role("button", name="Run").click()
    await playwright_api.expect(page.locator("#status")).to_have_text("succeeded")
    audio = page.locator("#output audio")
    await playwright_api.expect(audio).to_have_attribute("src", re.compile(r"tone\.wav(\?|$)"))
    # The browser read the file's header: it is served, from our origin, as something it can play.
    await page.wait_for_function("document.querySelector('#output audio').readyState >= 1"
                                 " && Math.abs(document.querySelector('#output audio').duration - 0.5) < 0.01",
                                 timeout=WAIT_MS)
    await chromium.shot(page, "model-media-audio")
    await page.get_by_label("kind", exact=True).select_option("video")
    await page.get_by_role("button", name="Run").click()
    video = page.locator("#output video")
    await playwright_api.expect(video).to_have_attribute("src", re.compile(r"clip\.webm(\?|$)"))
    await page.wait_for_function("document.querySelector('#output video').readyState >= 2"
                                 " && document.querySelector('#output video').videoWidth === 64", timeout=WAIT_MS)
    await chromium.shot(page, "model-media-video")
    await page.close()


async def test_cancel_from_the_playground(
    session: Any, chromium: Browser, platform: Any, models: dict[str, str]
) -> None:
    page = await session.new_page()
    await page.goto(platform.stack.base_url + "/cogwheel/sleeper")
    await page.get_by_label("seconds", exact=True).fill("120")
    await page.get_by_role("button", name="Run").click()
    await playwright_api.expect(page.locator("#status")).to_have_text("processing")
    await playwright_api.expect(page.locator("#logs")).to_contain_text("going to sleep")
    await playwright_api.expect(page.locator("#runtime")).to_contain_text("Running for")
    await chromium.shot(page, "model-sleeper-running")
    await page.get_by_role("button", name="Cancel").click()
    await playwright_api.expect(page.locator("#status")).to_have_text("canceled")
    await playwright_api.expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    await playwright_api.expect(page.locator("#output")).to_contain_text("No output (canceled)")
    link = await page.get_by_role("link", name="Open prediction page").get_attribute("href")
    async with platform.client() as client:
        assert (await client.get(f"/v1/predictions/{link.rsplit('/', 1)[-1]}")).json()["status"] == "canceled"
    await page.close()


async def test_every_kind_of_input_from_the_form(
    session: Any, chromium: Browser, platform: Any, models: dict[str, str]
) -> None:
    """Text, bounded numbers, checkbox, choices, a list, a secret and a file uploaded through the Files API."""
    page = await session.new_page()
    await page.goto(platform.stack.base_url + "/cogwheel/kitchen-sink")
    names = ("text", "number", "ratio", "flag", "choice", "size", "tags", "document", "attachments", "token", "seed")
    for name in names:
        await playwright_api.expect(page.get_by_label(name, exact=True)).to_have_count(1)
    # In the schema's x-order (the predictor's argument order), each label's text the input's name.
    fields = page.locator("#playground .field")
    assert await fields.evaluate_all("nodes => nodes.map((node) => node.dataset.field)") == list(names)
    labels = page.locator("#playground label")
    assert await labels.evaluate_all("nodes => nodes.map((node) => node.textContent.trim())") == list(names)
    assert await page.get_by_label("flag", exact=True).get_attribute("type") == "checkbox"
    assert await page.get_by_label("choice", exact=True).evaluate("node => node.tagName") == "SELECT"
    assert await page.get_by_label("token", exact=True).get_attribute("type") == "password"
    assert await page.get_by_label("number slider").get_attribute("max") == "100.0"
    # Unbounded numbers get a number box alone.
    assert await page.get_by_label("ratio", exact=True).get_attribute("type") == "number"
    await playwright_api.expect(page.get_by_label("ratio slider")).to_have_count(0)
    await page.get_by_label("text", exact=True).fill("sink")
    await page.get_by_label("number slider").fill("42")
    await playwright_api.expect(page.get_by_label("number", exact=True)).to_have_value("42")
    await page.get_by_label("flag", exact=True).check()
    await page.get_by_label("size", exact=True).select_option("512")
    await page.get_by_label("tags", exact=True).fill("red\ngreen")
    await page.get_by_label("token", exact=True).fill("sekrit")
    await page.get_by_label("document", exact=True).set_input_files(
        files=[{"name": "note.txt", "mimeType": "text/plain", "buffer": b"uploaded from the page"}])
    # A list of files: each one uploaded, sent as a list of URLs.
    await page.get_by_label("attachments", exact=True).set_input_files(files=[
        {"name": "one.txt", "mimeType": "text/plain", "buffer": b"first attachment"},
        {"name": "two.txt", "mimeType": "text/plain", "buffer": b"second attachment"}])
    await playwright_api.expect(page.locator("#snippet-python")).to_contain_text('"token": "<your token>"')
    assert "sekrit" not in await page.locator("#snippet-python").inner_text()
    await chromium.shot(page, "model-kitchen-sink-form")
    await page.get_by_role("button", name="Run").click()
    await playwright_api.expect(page.locator("#status")).to_have_text("succeeded")
    output = page.locator("#output")
    for expected in ('"document": "uploaded from the page"', '"number": 42', '"size": 512', '"flag": true',
                     '"secret_length": 6', '"tags": [', '"green"', '"first attachment"', '"second attachment"'):
        await playwright_api.expect(output).to_contain_text(expected)
    await playwright_api.expect(output.get_by_role("link", name=re.compile("report-sink"))).to_be_visible()
    await chromium.shot(page, "model-kitchen-sink-output")
    await page.close()


async def test_invalid_values_are_shown_next_to_their_fields(
    session: Any, chromium: Browser, platform: Any, models: dict[str, str]
) -> None:
    page = await session.new_page()
    await page.goto(platform.stack.base_url + "/cogwheel/image-generator")
    await page.get_by_label("width", exact=True).fill("5")
    await page.get_by_role("button", name="Run").click()
    error = page.locator("#error-width")
    await playwright_api.expect(error).to_have_text("Must be greater than or equal to 16")
    await playwright_api.expect(page.get_by_label("width", exact=True)).to_have_attribute("aria-invalid", "true")
    await playwright_api.expect(page.locator("#error-height")).to_be_hidden()
    await chromium.shot(page, "model-invalid-input")
    # A required input left empty is named next to its own field too.
    await page.goto(platform.stack.base_url + "/cogwheel/hello-world")
    await page.get_by_label("text", exact=True).fill("")
    await page.get_by_role("button", name="Run").click()
    await playwright_api.expect(page.locator("#error-text")).to_have_text("text is required")
    await page.close()


async def test_cancel_a_running_prediction_from_the_dashboard(
    session: Any, chromium: Browser, platform: Any, models: dict[str, str]
) -> None:
    async with platform.client() as client:
        body = {"version": models["sleeper"], "input": {"seconds": 120}}
        created = (await client.post("/v1/predictions", json=body)).json()
    assert created["source"] == "api"
    # Its page, open beside the dashboard, follows it live: running, its logs, then canceled without a reload.
    live = await session.new_page()
    await live.goto(created["urls"]["web"])
    await playwright_api.expect(live.locator("#status")).to_have_text("processing")
    await playwright_api.expect(live.locator("#logs")).to_contain_text("going to sleep")
    await playwright_api.expect(live.locator("#runtime")).to_contain_text("Running for")
    page = await session.new_page()
    await page.goto(platform.stack.base_url + "/dashboard")
    row = page.locator(f'tr[data-id="{created["id"]}"]')
    await playwright_api.expect(row.locator(".status")).to_have_text(re.compile("starting|processing"))
    await playwright_api.expect(row.locator("td").nth(2)).to_have_text("api")
    await playwright_api.expect(page.locator("td", has_text="web").first).to_be_visible()
    await playwright_api.expect(row.locator("td").nth(1)).to_have_text("cogwheel/sleeper")
    # Newest first, and live: a prediction made elsewhere after the page loaded shows up on top by itself.
    rows = page.locator("#prediction-rows tr")
    created_at = await rows.locator("time").evaluate_all(
        "nodes => nodes.map((node) => Date.parse(node.getAttribute('datetime')))")
    assert len(created_at) > 5 and created_at == sorted(created_at, reverse=True), created_at
    async with platform.client() as client:
        fresh = (await client.post("/v1/predictions", headers={"Prefer": "wait"},
                                   json={"version": platform.hello_version, "input": {"text": "fresh"}})).json()
    await playwright_api.expect(rows.first).to_have_attribute("data-id", fresh["id"])
    await playwright_api.expect(rows.first.locator(".status")).to_have_text("succeeded")
    await playwright_api.expect(rows.first.locator("td").nth(4)).to_have_text(re.compile(r"^\d+\.\d\d s$"))
    await chromium.shot(page, "dashboard")
    await row.get_by_role("button", name="Cancel").click()
    await playwright_api.expect(row.locator(".status")).to_have_text("canceled")
    await playwright_api.expect(row.get_by_role("button", name="Cancel")).to_have_count(0)
    async with platform.client() as client:
        assert (await client.get(f"/v1/predictions/{created['id']}")).json()["status"] == "canceled"
    await playwright_api.expect(live.locator("#status")).to_have_text("canceled")
    await playwright_api.expect(live.get_by_role("button", name="Cancel")).to_be_hidden()
    await live.close()
    await page.close()


async def _webhook_receiver() -> tuple[asyncio.Server, list[bytes]]:
    """An HTTP server on loopback that answers every request 204 and keeps what it was sent."""
    received: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length:\s*(\d+)", head)
        received.append(await reader.readexactly(int(length.group(1)) if length else 0))
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0), received


async def test_webhook_deliveries_and_failures_on_the_dashboard(
    session: Any, chromium: Browser, platform: Any
) -> None:
    # Nothing listens on port 9 of loopback (allowed for webhooks in this stack): the attempt fails.
    hook = "http://127.0.0.1:9/hooks/cogwheel"
    server, received = await _webhook_receiver()
    good = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hooks/received"
    try:
        async with platform.client() as client:
            created = (await client.post("/v1/predictions", headers={"Prefer": "wait"}, json={
                "version": platform.hello_version, "input": {"text": "hook"}, "webhook": hook,
                "webhook_events_filter": ["start"]})).json()
            delivered = (await client.post("/v1/predictions", headers={"Prefer": "wait"}, json={
                "version": platform.hello_version, "input": {"text": "hooked"}, "webhook": good,
                "webhook_events_filter": ["completed"]})).json()
        page = await session.new_page()
        row = page.locator("tr", has_text=hook).first
        good_row = page.locator("tr", has_text=good).first
        for _ in range(60):
            await page.goto(platform.stack.base_url + "/dashboard?tab=webhooks")
            if await row.count() and await good_row.count():
                break
            await page.wait_for_timeout(1000)
    finally:
        server.close()
    assert any(delivered["id"].encode() in body for body in received)
    await playwright_api.expect(good_row).to_contain_text("delivered")
    await playwright_api.expect(good_row.locator("td").nth(2)).to_have_text("completed")
    await playwright_api.expect(good_row.get_by_role("link")).to_have_attribute("href", f"/p/{delivered['id']}")
    await playwright_api.expect(row).to_contain_text("failed")
    await playwright_api.expect(row.locator("td").nth(2)).to_have_text("start")
    await playwright_api.expect(row.get_by_role("link")).to_have_attribute("href", f"/p/{created['id']}")
    for outcome in ("failed", "delivered"):
        count = page.locator(".stats > div", has_text=outcome).locator("strong")
        await playwright_api.expect(count).to_have_text(re.compile(r"^[1-9]\d*$"))
    await chromium.shot(page, "dashboard-webhooks")
    await page.close()


async def test_urls_web_of_an_api_prediction_opens_its_page(session: Any, chromium: Browser, platform: Any) -> None:
    async with platform.client() as client:
        body = (await client.post("/v1/predictions", headers={"Prefer": "wait"},
                                  json={"version": platform.hello_version, "input": {"text": "link"}})).json()
    assert body["status"] == "succeeded"
    page = await session.new_page()
    await page.goto(body["urls"]["web"])
    await playwright_api.expect(page.locator("#output")).to_have_text("hello link")
    await playwright_api.expect(page.locator("#status")).to_have_text("succeeded")
    await playwright_api.expect(page.locator(".meta")).to_contain_text("source api")
    await playwright_api.expect(page.locator("dl.inputs").first).to_contain_text("link")
    # The model it ran and its timings.
    await playwright_api.expect(page.get_by_role("link", name="cogwheel/hello-world")).to_be_visible()
    for timing in ("#started-at", "#completed-at"):
        await playwright_api.expect(page.locator(timing)).not_to_have_text("—")
    await playwright_api.expect(page.locator("#predict-time")).to_have_text(re.compile(r"^\d+\.\d\d s$"))
    await chromium.shot(page, "prediction")
    # A refresh shows the same prediction.
    await page.reload()
    await playwright_api.expect(page.locator("h1")).to_have_text(body["id"])
    await page.close()


async def test_shared_prediction_is_readable_by_anyone_with_the_link(
    session: Any, chromium: Browser, platform: Any
) -> None:
    async with platform.client() as client:
        body = (await client.post("/v1/predictions", headers={"Prefer": "wait"}, json={
            "version": platform.hello_version, "input": {"text": "shared"},
            "webhook": "http://127.0.0.1:9/private-hook?key=owners-only", "webhook_events_filter": ["start"]})).json()
    url = body["urls"]["web"]
    stranger = await chromium.context()
    try:
        before = await stranger.new_page()
        assert (await before.goto(url)).status == 404
        # Without a session: public models are there, private ones are not, and running needs a login.
        await before.goto(platform.stack.base_url + "/")
        await playwright_api.expect(before.get_by_role("link", name="cogwheel/hello-world")).to_be_visible()
        await playwright_api.expect(before.get_by_role("link", name="cogwheel/drafts")).to_have_count(0)
        assert (await before.goto(platform.stack.base_url + "/cogwheel/drafts")).status == 404
        await before.goto(platform.stack.base_url + "/cogwheel/hello-world")
        await playwright_api.expect(before.get_by_role("button", name="Run")).to_be_disabled()
        page = await session.new_page()
        await page.goto(url)
        await page.get_by_role("button", name="Share").click()
        await playwright_api.expect(page.locator("#share-note")).to_be_visible()
        after = await stranger.new_page()
        response = await after.goto(url)
        assert response.status == 200
        await playwright_api.expect(after.locator("#output")).to_have_text("hello shared")
        # Readers are not owners: no cancel, share or delete buttons, and nothing to change through the API.
        await playwright_api.expect(after.get_by_role("button", name="Stop sharing")).to_have_count(0)
        assert "owners-only" not in await after.content()
        polled = await after.request.get(f"{platform.stack.base_url}/web/api/predictions/{body['id']}")
        assert polled.ok and "webhook" not in await polled.json()
        await chromium.shot(after, "prediction-shared")
        await page.get_by_role("button", name="Stop sharing").click()
        await playwright_api.expect(page.locator("#share-note")).to_be_hidden()
        assert (await after.goto(url)).status == 404
        await page.close()
    finally:
        await stranger.close()


async def test_owner_deletes_output_data(session: Any, platform: Any, models: dict[str, str]) -> None:
    async with platform.client() as client:
        request = {"version": models["image"], "input": {"seed": 3, "width": 64, "height": 64}}
        body = (await client.post("/v1/predictions", headers={"Prefer": "wait"}, json=request)).json()
        assert body["status"] == "succeeded"
        assert (await client.get(body["output"])).status_code == 200
        page = await session.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        await page.goto(body["urls"]["web"])
        await playwright_api.expect(page.locator("#output img")).to_be_visible()
        await page.get_by_role("button", name="Delete output data").click()
        await playwright_api.expect(page.locator("#output")).to_contain_text("deleted")
        assert (await client.get(body["output"])).status_code == 404
        after = (await client.get(f"/v1/predictions/{body['id']}")).json()
        assert after["data_removed"] is True and after["output"] is None and after["input"] == {}
        await page.close()


async def _account_answer(platform: Any, token: str, expected: int | None = None) -> int:
    """`GET /v1/account`'s status with `token`; waits up to 10 s for `expected` (a token change reaches every
    gateway's authentication cache through an event)."""
    async with httpx.AsyncClient(base_url=platform.stack.base_url) as client:
        for _ in range(50):
            status = (await client.get("/v1/account", headers={"Authorization": f"Bearer {token}"})).status_code
            if expected is None or status == expected:
                break
            await asyncio.sleep(0.2)
    return status


async def test_account_page_creates_a_token_shown_once(session: Any, chromium: Browser, platform: Any) -> None:
    page = await session.new_page()
    await page.goto(platform.stack.base_url + "/account")
    await page.get_by_label("New token name").fill("from-the-browser")
    await page.get_by_role("button", name="Create token").click()
    secret = (await page.locator("#new-token").inner_text()).strip()
    assert secret.startswith("cwk_")
    assert await _account_answer(platform, secret) == 200
    await chromium.shot(page, "account")
    row = page.locator("tr", has_text="from-the-browser")
    state = row.locator(".status")
    await playwright_api.expect(state).to_have_text("active")
    await row.get_by_role("button", name="Disable").click()
    await playwright_api.expect(state).to_have_text("disabled")
    # Shown once: the page after the change no longer has the secret.
    await playwright_api.expect(page.locator("#new-token")).to_have_count(0)
    assert secret not in await page.content()
    assert await _account_answer(platform, secret, 401) == 401
    await row.get_by_role("button", name="Enable").click()
    await playwright_api.expect(state).to_have_text("active")
    assert await _account_answer(platform, secret, 200) == 200
    await row.get_by_role("button", name="Revoke").click()
    revoked = page.locator("tr", has_text="from-the-browser").locator(".status")
    await playwright_api.expect(revoked).to_have_text("revoked")
    await playwright_api.expect(page.locator("#new-token")).to_have_count(0)
    assert await _account_answer(platform, secret, 401) == 401
    # The webhook signing secret, the one the API gives.
    await page.get_by_text("Show the secret").click()
    shown = (await page.locator("#signing-secret").inner_text()).strip()
    async with platform.client() as client:
        assert shown == (await client.get("/v1/webhooks/default/secret")).json()["key"]
    await chromium.shot(page, "account-secret")
    await page.close()


async def test_every_page_fits_a_phone_screen(session: Any, chromium: Browser, platform: Any) -> None:
    """At 390 px wide nothing scrolls sideways (tables of many columns stack each row into a card) and text stays
    legible."""
    origin = platform.stack.base_url
    async with platform.client() as client:
        body = (await client.post("/v1/predictions", headers={"Prefer": "wait"},
                                  json={"version": platform.hello_version, "input": {"text": "phone"}})).json()
    pages = {
        "explore": "/", "model-kitchen-sink": "/cogwheel/kitchen-sink", "prediction": f"/p/{body['id']}",
        "dashboard": "/dashboard", "dashboard-webhooks": "/dashboard?tab=webhooks", "account": "/account",
        "login": "/login",
    }
    page = await session.new_page()
    await page.set_viewport_size({"width": 390, "height": 844})
    for name, path in pages.items():
        await page.goto(origin + path)
        await page.wait_for_load_state("networkidle")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways on a phone ({width}px wide)"
        size = await page.evaluate("parseFloat(getComputedStyle(document.querySelector('main')).fontSize)")
        assert size >= 14, f"{path}: text of {size}px"
        await chromium.shot(page, f"{name}-phone")
    await page.close()


async def test_writes_need_the_csrf_token_and_our_origin(session: Any, platform: Any) -> None:
    origin = platform.stack.base_url
    cookie = next(c["value"] for c in await session.cookies() if c["name"] == "cogwheel_session")
    url = f"{origin}/web/api/models/cogwheel/hello-world/predictions"
    async with httpx.AsyncClient(cookies={"cogwheel_session": cookie}) as client:
        no_token = await client.post(url, json={"input": {"text": "x"}})
        assert no_token.status_code == 403
        page = await session.new_page()
        await page.goto(origin + "/")
        csrf = await page.locator('meta[name="csrf-token"]').get_attribute("content")
        await page.close()
        elsewhere = await client.post(url, json={"input": {"text": "x"}},
                                      headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
        assert elsewhere.status_code == 403
        same = await client.post(url, json={"input": {"text": "x"}}, headers={"X-CSRF-Token": csrf, "Origin": origin})
        assert same.status_code == 201 and same.json()["source"] == "web"
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.post(url, json={"input": {"text": "x"}})).status_code == 401
        dashboard = await anonymous.get(f"{origin}/dashboard", follow_redirects=False)
        assert dashboard.headers["location"].startswith("/login")


async def test_no_request_left_the_origin(chromium: Browser, platform: Any) -> None:
    assert chromium.requests, "the browser made no requests at all"
    own = urlsplit(chromium.origin).netloc
    foreign = [url for url in chromium.requests
               if not url.startswith(("data:", "blob:")) and urlsplit(url).netloc != own]
    assert foreign == []
    # The API token travelled in the login form's body only, never in an address.
    assert not [url for url in chromium.requests if platform.token in url]
    assert chromium.errors == []
