"""The Playground (/playground) in a real browser: headless Debian chromium driven by Playwright against the real
server, real sandboxes and the scripted model. Controls are found by role and label only; each test saves a
screenshot of what it saw under build/playground-screenshots/ and checks that no request left for another host."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, Route, expect, sync_playwright

from orchestrator.localserver import Server
from tests.conftest import running_server
from tests.scripted_model import ScriptedModel, Turn

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[1] / "build" / "playground-screenshots"
QUESTION = "I need to solve the equation `3x + 11 = 14`. Can you help me?"
TUTOR_CODE = "x = (14 - 11) / 3\nprint(x)"
# Mixed line endings and a UTF-8 character: a download that decodes, re-encodes or normalises would differ.
CSV_BYTES = b"month,units\r\nJan,3\nF\xc3\xa9v,5\r\n"
PLOT = ("import csv\nimport matplotlib.pyplot as plt\n"
        "rows = list(csv.DictReader(open('/mnt/data/sales.csv')))\n"
        "plt.bar([r['month'] for r in rows], [int(r['units']) for r in rows])\nplt.show()\n"
        f"open('/mnt/data/summary.csv', 'wb').write({CSV_BYTES!r})\n")
MOONS = ("Saturn has 146 known moons, more than any other planet in the Solar System. Titan, the largest, is "
         "bigger than the planet Mercury and has a thick nitrogen atmosphere.\n")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclass
class Watched:
    """A page with every request it made and every console error it logged."""

    page: Page
    base: str
    requests: list[Request] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def goto(self, path: str) -> None:
        self.page.goto(f"{self.base}{path}")

    def foreign(self) -> list[str]:
        """Requests for anything but this server (blob: URLs are the page's own copies of its files)."""
        own = (self.base + "/", f"blob:{self.base}/")
        return [r.url for r in self.requests if not r.url.startswith(own) and r.url != self.base]

    def done(self, shot: str, console_errors: bool = False) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
        assert self.foreign() == []
        if not console_errors:
            assert self.errors == []


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    yield launched
    launched.close()


@pytest.fixture(scope="module")
def pg_server(docker_ready: None, embedder: object, model: ScriptedModel,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("playground"), TOOLSHED_MODEL_BASE_URL=model.base_url) as srv:
        yield srv


def watch(browser: Browser, base: str) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    watched = Watched(page, base)

    def request(seen: Request) -> None:
        watched.requests.append(seen)

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    page.on("request", request)
    page.on("console", console)
    page.on("pageerror", lambda error: watched.errors.append(str(error)))
    yield watched
    context.close()


@pytest.fixture
def page(browser: Browser, pg_server: Server) -> Iterator[Watched]:
    yield from watch(browser, pg_server.base_url)


def make_assistant(watched: Watched, name: str, *, code: bool = False, search: bool = False,
                   files: list[Path] | None = None) -> None:
    page = watched.page
    page.get_by_role("button", name="New assistant").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Instructions").fill("You are a personal math tutor. Write and run code to answer.")
    page.get_by_label("Model").fill("scripted")
    page.get_by_role("switch", name="Code Interpreter").set_checked(code)
    page.get_by_role("switch", name="File search").set_checked(search)
    if files:
        page.get_by_label("Files to attach").set_input_files([str(f) for f in files])
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_have_text(f"Saved {name}.", timeout=60_000)
    expect(page.get_by_role("button", name=name)).to_have_attribute("aria-pressed", "true")


def ask(watched: Watched, text: str) -> None:
    watched.page.get_by_label("Message").fill(text)
    watched.page.get_by_role("button", name="Run").click()


def conversation(watched: Watched):  # noqa: ANN201 - a Playwright Locator
    return watched.page.get_by_role("log", name="Conversation")


def test_the_page_loads_with_no_request_elsewhere_and_no_console_error(page: Watched) -> None:
    page.goto("/playground")
    expect(page.page.get_by_role("heading", name="Toolshed Playground")).to_be_visible()
    # The model menu is filled from GET /v1/models: the scripted endpoint lists none, so the default is offered.
    expect(page.page.get_by_label("Model")).to_have_value("gpt-4o-mini")
    for name in ("Save", "Run", "New assistant", "New conversation", "Use key"):
        expect(page.page.get_by_role("button", name=name)).to_be_enabled()
    for label in ("API key", "Name", "Instructions", "Model", "Message", "Files to attach"):
        expect(page.page.get_by_label(label)).to_be_visible()
    page.page.wait_for_timeout(500)  # late requests (an icon, a source map) would come now
    assert page.requests and page.requests[0].url == f"{page.base}/playground"
    page.done("01-loaded")


def test_models_passes_the_default_when_the_endpoint_lists_none(pg_server: Server) -> None:
    listed = httpx.get(f"{pg_server.base_url}/v1/models", timeout=30).json()
    assert listed == {"object": "list", "data": [
        {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "toolshed"}]}


def test_an_assistant_created_in_the_page_is_in_the_api(page: Watched, pg_server: Server) -> None:
    page.goto("/playground")
    make_assistant(page, "Page Tutor", code=True)
    listed = httpx.get(f"{pg_server.base_url}/v1/assistants", timeout=30).json()["data"]
    [made] = [a for a in listed if a["name"] == "Page Tutor"]
    assert made["model"] == "scripted" and made["tools"] == [{"type": "code_interpreter"}]
    assert made["instructions"] == "You are a personal math tutor. Write and run code to answer."
    page.done("02-assistant-created")


def tutor_run(page: Watched, model: ScriptedModel, name: str) -> None:
    model.say(Turn(tool_calls=[("code_interpreter", json.dumps({"code": TUTOR_CODE}))]),
              Turn(text="Sure. Subtract 11 from both sides and divide by 3: **x = 1**.", pieces=6, piece_delay=0.05))
    page.goto("/playground")
    make_assistant(page, name, code=True)
    page.page.evaluate("window.sameDocument = true")
    ask(page, QUESTION)
    log = conversation(page)
    expect(log.get_by_role("article", name="Assistant said")).to_contain_text("x = 1", timeout=120_000)
    expect(page.page.get_by_role("status")).to_have_text("Run completed.")


def test_a_run_streams_in_its_reply_and_the_code_that_ran_without_a_reload(page: Watched,
                                                                         model: ScriptedModel) -> None:
    tutor_run(page, model, "Streaming Tutor")
    log = conversation(page)
    expect(log.get_by_role("article", name="You said")).to_contain_text("3x + 11 = 14")
    call = log.get_by_role("figure", name="Code Interpreter")
    expect(call.get_by_role("code")).to_have_text(TUTOR_CODE)
    expect(call.get_by_label("Output")).to_have_text("1.0")
    expect(log.get_by_role("strong")).to_have_text("x = 1")  # Markdown, rendered
    assert page.page.evaluate("window.sameDocument") is True  # no reload happened
    assert "/playground/threads/thread_" in page.page.url
    expect(page.page.get_by_role("button", name="Cancel")).to_be_hidden()
    page.done("03-math-tutor")


def test_reloading_the_thread_address_shows_the_same_conversation(page: Watched, model: ScriptedModel) -> None:
    tutor_run(page, model, "Reload Tutor")
    address = page.page.url
    before = conversation(page).inner_text()
    page.page.reload()
    assert page.page.url == address
    log = conversation(page)
    expect(log.get_by_role("article", name="Assistant said")).to_contain_text("x = 1")
    expect(log.get_by_role("figure", name="Code Interpreter").get_by_role("code")).to_have_text(TUTOR_CODE)
    assert log.inner_text() == before
    expect(page.page.get_by_role("button", name="Reload Tutor")).to_have_attribute("aria-pressed", "true")
    page.done("04-reloaded")


def test_a_plot_shows_as_an_image_and_a_generated_csv_downloads_byte_exact(
        page: Watched, model: ScriptedModel, tmp_path: Path) -> None:
    sales = tmp_path / "sales.csv"
    sales.write_text("month,units\nJan,3\nFeb,5\nMar,4\n")
    model.say(Turn(tool_calls=[("code_interpreter", json.dumps({"code": PLOT}))]),
              Turn(text="Here is the chart, and the table: [summary.csv](sandbox:/mnt/data/summary.csv)."))
    page.goto("/playground")
    make_assistant(page, "Analyst", code=True, files=[sales])
    expect(page.page.get_by_role("list", name="Attached files")).to_contain_text("sales.csv (Code Interpreter)")
    ask(page, "Plot the units sold per month.")
    log = conversation(page)
    figure = log.get_by_role("img", name="Figure from the assistant")
    expect(figure).to_be_visible(timeout=120_000)
    page.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=figure.element_handle())
    expect(log.get_by_role("img", name="Figure from the code")).to_be_visible()
    with page.page.expect_download() as downloading:
        log.get_by_role("link", name="summary.csv").click()
    download = downloading.value
    assert download.suggested_filename == "summary.csv"
    assert Path(download.path()).read_bytes() == CSV_BYTES
    page.done("05-plot-and-download")


def wait_for_store(server: Server, name: str) -> None:
    """Until the assistant's file_search store has indexed its file."""
    deadline = time.monotonic() + 300
    while True:
        listed = httpx.get(f"{server.base_url}/v1/assistants", timeout=30).json()["data"]
        [made] = [a for a in listed if a["name"] == name]
        [store] = made["tool_resources"]["file_search"]["vector_store_ids"]
        counts = httpx.get(f"{server.base_url}/v1/vector_stores/{store}", timeout=30).json()["file_counts"]
        if counts["completed"] >= 1:
            return
        assert counts["failed"] == 0 and time.monotonic() < deadline
        time.sleep(0.5)


def test_a_file_search_answer_shows_its_citation_as_a_footnote(page: Watched, pg_server: Server,
                                                              model: ScriptedModel, tmp_path: Path) -> None:
    moons = tmp_path / "moons.txt"
    moons.write_text(MOONS)
    page.goto("/playground")
    make_assistant(page, "Astronomer", search=True, files=[moons])
    wait_for_store(pg_server, "Astronomer")
    model.say(Turn(tool_calls=[("file_search", json.dumps({"query": "how many moons does Saturn have"}))]),
              Turn(text="Saturn has 146 known moons【0:0†moons.txt】."))
    ask(page, "How many moons does Saturn have?")
    log = conversation(page)
    sources = log.get_by_role("list", name="Sources")
    expect(sources).to_be_visible(timeout=120_000)
    expect(sources.get_by_role("listitem")).to_have_count(1)
    expect(sources.get_by_role("listitem")).to_contain_text("moons.txt")
    expect(sources.get_by_role("blockquote")).to_contain_text("Saturn has 146 known moons")
    expect(log.get_by_role("link", name="Source 1")).to_be_visible()
    assert "【" not in log.get_by_role("article", name="Assistant said").inner_text()
    expect(log.get_by_role("figure", name="File search")).to_contain_text("moons.txt")
    page.done("06-file-search-footnote")


def test_a_keyed_server_serves_the_page_and_asks_for_the_key(browser: Browser, docker_ready: None,
                                                           tmp_path: Path) -> None:
    with running_server(tmp_path / "keyed", TOOLSHED_API_KEYS='["k-play"]') as keyed:
        assert httpx.get(f"{keyed.base_url}/v1/models", timeout=30).status_code == 401
        for watched in watch(browser, keyed.base_url):
            watched.goto("/playground")
            alert = watched.page.get_by_role("alert")
            expect(alert).to_have_text("This server needs an API key: enter it in the API key field.")
            expect(watched.page.get_by_label("API key")).to_be_focused()
            SHOTS.mkdir(parents=True, exist_ok=True)
            watched.page.screenshot(path=str(SHOTS / "07-key-asked.png"), full_page=True)
            watched.page.get_by_label("API key").fill("k-play")
            watched.page.get_by_role("button", name="Use key").click()
            expect(watched.page.get_by_label("Model")).to_have_value("gpt-4o-mini")
            expect(alert).to_have_text("")
            keyed_calls = [r for r in watched.requests if r.url.startswith(f"{keyed.base_url}/v1/")]
            assert keyed_calls[-1].all_headers().get("authorization") == "Bearer k-play"
            assert watched.page.evaluate("sessionStorage.getItem('toolshed.apiKey')") == "k-play"
            assert watched.page.evaluate("localStorage.length") == 0
            # The 401 the page was first answered is logged by the browser itself, as it should be.
            watched.done("08-key-given", console_errors=True)


def test_a_function_call_is_answered_in_its_output_box(page: Watched, pg_server: Server,
                                                      model: ScriptedModel) -> None:
    clock = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    httpx.post(f"{pg_server.base_url}/v1/assistants", timeout=30,
               json={"name": "Clock", "model": "scripted", "tools": [clock]}).raise_for_status()
    model.say(Turn(tool_calls=[("get_time", "{}")]), Turn(text="It is noon."))
    page.goto("/playground")
    page.page.get_by_role("button", name="Clock").click()
    ask(page, "What time is it?")
    outputs = page.page.get_by_role("form", name="Function outputs")
    expect(outputs).to_be_visible(timeout=120_000)
    expect(page.page.get_by_role("status")).to_have_text("The run is waiting for your function outputs.")
    expect(page.page.get_by_role("button", name="Cancel")).to_be_visible()
    outputs.get_by_label("Output of get_time({})").fill("12:00")
    outputs.get_by_role("button", name="Submit outputs").click()
    log = conversation(page)
    expect(log.get_by_role("article", name="Assistant said")).to_contain_text("It is noon.", timeout=120_000)
    expect(log.get_by_role("figure", name="Function get_time").get_by_label("Output")).to_have_text("12:00")
    expect(page.page.get_by_role("status")).to_have_text("Run completed.")
    assert model.requests[-1]["messages"][-1] == {"role": "tool", "tool_call_id": model.requests[-1]["messages"][-2][
        "tool_calls"][0]["id"], "content": "12:00"}
    page.done("09-function-output")


def test_cancel_stops_a_live_run(page: Watched, model: ScriptedModel) -> None:
    model.say(Turn(text="too late", delay=60))
    page.goto("/playground")
    make_assistant(page, "Slow")
    ask(page, "Take your time.")
    cancel = page.page.get_by_role("button", name="Cancel")
    expect(cancel).to_be_visible(timeout=60_000)
    expect(page.page.get_by_role("button", name="Run")).to_be_disabled()
    expect(page.page.get_by_role("status")).to_have_text("Running…", timeout=60_000)
    cancel.click()
    expect(page.page.get_by_role("status")).to_have_text("Run cancelled.", timeout=60_000)
    expect(cancel).to_be_hidden()
    expect(page.page.get_by_role("button", name="Run")).to_be_enabled()
    page.done("10-cancelled")


def test_cancel_pressed_before_the_run_exists_cancels_it_once_it_does(page: Watched, model: ScriptedModel) -> None:
    model.say(Turn(text="too late", delay=60))
    page.goto("/playground")
    make_assistant(page, "Hasty")
    creating = re.compile(r".*/v1/threads/[^/]+/runs\?.*")
    held: list[Route] = []
    page.page.route(creating, lambda route: held.append(route))
    ask(page, "Never mind.")
    cancel = page.page.get_by_role("button", name="Cancel")
    cancel.click()  # the run's creation is held back: the page does not know the run yet
    expect(page.page.get_by_role("status")).to_have_text("Cancelling…")
    deadline = time.monotonic() + 30
    while not held:
        assert time.monotonic() < deadline, "the page never asked for the run"
        page.page.wait_for_timeout(50)
    held[0].continue_()
    page.page.unroute(creating)
    expect(page.page.get_by_role("status")).to_have_text("Run cancelled.", timeout=60_000)
    cancels = [r.url for r in page.requests if r.method == "POST" and r.url.endswith("/cancel")]
    assert len(cancels) == 1
    expect(conversation(page)).not_to_contain_text("too late")
    page.done("11-cancelled-early")
