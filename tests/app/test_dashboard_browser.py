"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright, against a real
uvicorn server serving the committed demo store (`models/fb-lstm`, the default, and `models/aapl-lstm`). Expectations come from the
bundle's own manifest and from the same server's API, never from numbers written here."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    sync_playwright,
)

from app.routers.dashboard import STATIC_DIR, plotly_js_path
from bench.server import HOST, Server, app_server, free_port
from model_store import Bundle, ModelStore

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
STORE = REPO_ROOT / "models"
MODEL = "fb-lstm"
OTHER_MODEL = "aapl-lstm"
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AAPL = "AAPL_2022-01_2023-05.csv"
HORIZON = 10  # the page's default horizon
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def demo_bundle() -> Bundle:
    """The committed demo bundle, verified: what the server serves and the page must show."""
    return ModelStore(STORE).verify(MODEL)


@pytest.fixture(scope="module")
def frontend_origin() -> str:
    """Where the separately hosted copy of the page lives (the API allows it by CORS)."""
    return f"http://{HOST}:{free_port()}"


@pytest.fixture(scope="module")
def server(frontend_origin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real uvicorn process serving the committed demo bundle on a free loopback port."""
    env = {
        "MODEL_STORE_DIR": str(STORE),
        "MODELS": "*",
        "DEFAULT_MODEL": MODEL,
        "MODEL_VERSION": "latest",
        "PREDICTOR_BACKEND": "onnx",
        "MODEL_POLL_SECONDS": "0",
        "CORS_ORIGINS": frontend_origin,
    }
    log = tmp_path_factory.mktemp("dashboard-server") / "uvicorn.log"
    with app_server(env, log, ready_timeout_s=60.0) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def frontend(frontend_origin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same page hosted apart from the API by a plain static file server (the recipe in docs/dashboard.md)."""
    site = tmp_path_factory.mktemp("site")
    shutil.copytree(STATIC_DIR, site / "static")
    shutil.copy(STATIC_DIR / "index.html", site / "index.html")
    (site / "vendor").mkdir()
    shutil.copy(plotly_js_path(), site / "vendor" / "plotly.min.js")
    port = urlsplit(frontend_origin).port
    assert port is not None
    command = [sys.executable, "-m", "http.server", str(port), "--bind", HOST]
    command += ["--directory", str(site)]
    log = site.parent / "site.log"
    with Server(command, port=port, env=os.environ, log_path=log, ready_path="/") as static:
        yield static.base_url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium (installed by `make test`), headless."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """One page on the dashboard, recording every request it makes and every uncaught error."""

    def __init__(self, page: Page, origins: list[str]) -> None:
        self.page = page
        self.origins = origins
        self.requests: list[str] = []
        self.page_errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("console", self._on_console)
        page.set_default_timeout(TIMEOUT_MS)

    def _on_console(self, message: ConsoleMessage) -> None:
        # Chromium logs every 4xx the API answers; anything else (a CSP refusal...) is a defect.
        if message.type == "error" and "server responded with a status of 4" not in message.text:
            self.page_errors.append(message.text)

    def assert_clean(self) -> None:
        """Only the allowed origins were contacted and no script or console error happened."""
        allowed = {urlsplit(origin)[:2] for origin in self.origins}
        foreign = [url for url in self.requests if urlsplit(url)[:2] not in allowed]
        assert self.requests, "the page made no requests at all"
        assert foreign == [], f"requests to other hosts: {foreign}"
        assert self.page_errors == []

    def wait_for_demo(self) -> None:
        """Until the first render is complete: the demo case, horizon included, drawn."""
        self.page.wait_for_selector(
            f"#chart[data-source='demo'][data-horizon='{HORIZON}'] .main-svg"
        )

    def screenshot(self, name: str) -> None:
        """The whole page as a test artifact (taken before asserting, to help read failures)."""
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=ARTIFACTS / name, full_page=True)

    def traces(self) -> dict[str, dict[str, Any]]:
        """The chart's Plotly traces by uid, as Plotly holds them after drawing."""
        traces = self.page.evaluate(
            "() => document.getElementById('chart').data"
            ".map(t => ({uid: t.uid, x: Array.from(t.x), y: Array.from(t.y)}))"
        )
        return {trace["uid"]: trace for trace in traces}

    def metric_cells(self, table: str) -> dict[str, tuple[str, str]]:
        """`{metric: (model text, persistence text)}` of a metrics table."""
        rows = self.page.locator(f"{table} tbody tr")
        return {
            rows.nth(i).get_attribute("data-metric") or "": (
                rows.nth(i).locator(".model-value").inner_text(),
                rows.nth(i).locator(".persistence-value").inner_text(),
            )
            for i in range(rows.count())
        }


@pytest.fixture
def new_visit(browser: Browser, server: str) -> Iterator[Callable[[], Visit]]:
    """Opens the dashboard in a fresh browser context, after its first render (the demo case,
    horizon included); every context is closed at teardown."""
    contexts: list[BrowserContext] = []

    def open_visit() -> Visit:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        visit = Visit(context.new_page(), [server])
        visit.page.goto(f"{server}/")
        visit.wait_for_demo()
        return visit

    yield open_visit
    for context in contexts:
        context.close()


@pytest.fixture
def visit(new_visit: Callable[[], Visit]) -> Visit:
    """The dashboard opened fresh, after its first render."""
    return new_visit()


def _money(value: float) -> str:
    return f"${value:.2f}"


def _percent(value: float) -> str:
    return f"{value:.2f} %"


def _expected_cells(model: dict[str, float], persistence: dict[str, float]) -> dict[str, Any]:
    return {
        "rmse": (_money(model["rmse"]), _money(persistence["rmse"])),
        "mae": (_money(model["mae"]), _money(persistence["mae"])),
        "mape": (_percent(model["mape"]), _percent(persistence["mape"])),
    }


def test_first_open_shows_the_model_and_its_test_month(
    visit: Visit, server: str, demo_bundle: Bundle
) -> None:
    manifest = demo_bundle.manifest
    evaluation, context = manifest.evaluation, manifest.context
    page = visit.page
    visit.screenshot("dashboard-demo.png")

    assert page.locator("#model-name").inner_text() == manifest.name == MODEL
    assert page.locator("#model-version").inner_text() == f"v{manifest.version}"
    assert manifest.created_at[:10] in page.locator("#model-created").inner_text()
    expected = _expected_cells(manifest.metrics["model"], manifest.metrics["persistence"])
    assert visit.metric_cells("#metrics") == expected
    # The chart's own metrics are the server's /forecast of the demo CSV: the same numbers.
    assert visit.metric_cells("#forecast-metrics") == expected

    # The demo's history is the manifest's context; the page can only draw what the API sends.
    served = httpx.get(f"{server}/models/{MODEL}").json()
    assert served.get("context") == context.to_json(), (
        "GET /models/{name} must send the manifest's context (shared contract): it is drawn as "
        "the demo's history; app/routers/models.py leaves it out"
    )
    traces = visit.traces()
    predicted, actual, horizon = traces["predicted"], traces["actual"], traces["horizon"]
    assert len(evaluation["dates"]) == 21
    assert predicted["x"] == evaluation["dates"]
    assert all(day.startswith("2020-01-") for day in predicted["x"])
    assert predicted["y"] == pytest.approx(evaluation["predicted"], rel=1e-6)
    # History (the last 40 training closes) then the 21 January closes.
    assert actual["x"] == context.dates + evaluation["dates"]
    assert actual["y"] == pytest.approx(context.closes + evaluation["actual"])
    assert len(actual["x"]) == 61
    assert len(horizon["x"]) == HORIZON
    assert min(horizon["x"]) > evaluation["dates"][-1]
    # Plotly really drew them: one SVG trace group per trace, the predicted line has a path.
    assert page.locator("#chart .scatterlayer .trace").count() == len(traces)
    assert page.locator("#chart .scatterlayer .trace .js-line").first.get_attribute("d")
    visit.assert_clean()


def test_uploading_a_csv_redraws_the_chart_and_metrics(
    visit: Visit, server: str, shared_data: Path
) -> None:
    page = visit.page
    demo_metrics = visit.metric_cells("#forecast-metrics")
    csv_path = shared_data / AAPL
    with csv_path.open("rb") as handle:
        response = httpx.post(
            f"{server}/forecast", params={"horizon": HORIZON}, files={"file": (AAPL, handle)}
        )
    assert response.status_code == 200, response.text
    expected = response.json()

    page.set_input_files("#file-input", csv_path)
    page.wait_for_selector(f"#chart[data-source='upload:{AAPL}'] .main-svg")
    visit.screenshot("dashboard.png")

    traces = visit.traces()
    points = expected["points"]
    assert traces["predicted"]["x"] == [point["date"] for point in points]
    assert traces["predicted"]["y"] == pytest.approx([point["predicted"] for point in points])
    # The actual line is the whole CSV: its first 40 rows (no prediction: `history`), then the rest.
    history = expected["history"]
    assert len(history) == 40 and history[0]["date"] == "2022-01-03"
    assert traces["actual"]["x"] == [row["date"] for row in history + points]
    assert traces["actual"]["y"] == pytest.approx([row["actual"] for row in history + points])
    assert traces["predicted"]["x"][0].startswith("2022-")
    assert traces["predicted"]["x"][-1].startswith("2023-05-")
    assert traces["horizon"]["x"] == [point["date"] for point in expected["horizon"]]
    assert AAPL in page.locator("#chart-caption").inner_text()

    metrics = expected["metrics"]
    cells = visit.metric_cells("#forecast-metrics")
    assert cells == _expected_cells(
        metrics, {key: metrics[f"persistence_{key}"] for key in ("rmse", "mae", "mape")}
    )
    assert cells != demo_metrics
    visit.assert_clean()


def test_dropping_a_csv_on_the_drop_zone_uploads_it(visit: Visit, shared_data: Path) -> None:
    text = (shared_data / AAPL).read_text()
    # What a real drop delivers: a DataTransfer holding the file, dispatched on the zone.
    transfer = visit.page.evaluate_handle(
        """([name, text]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([text], name, {type: "text/csv"}));
            return transfer;
        }""",
        [AAPL, text],
    )
    visit.page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})
    visit.page.wait_for_selector(f"#chart[data-source='upload:{AAPL}']")
    assert visit.traces()["predicted"]["x"][0].startswith("2022-")
    visit.assert_clean()


def test_a_rejected_csv_shows_the_api_error(visit: Visit, server: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,Close\n2020-01-02,209.78\n2020-01-03,abc\n")
    response = httpx.post(f"{server}/forecast", files={"file": ("bad.csv", bad.read_bytes())})
    assert 400 <= response.status_code < 500
    message = response.json()["error"]["message"]

    visit.page.set_input_files("#file-input", bad)
    error = visit.page.locator("#upload-error")
    error.wait_for(state="visible")
    assert message in error.inner_text()
    # The chart keeps the demo case rather than going blank.
    assert visit.page.locator("#chart").get_attribute("data-source") == "demo"
    visit.assert_clean()


def test_the_form_shows_the_api_error_for_39_closes_and_the_answer_for_40(
    visit: Visit, server: str, demo_bundle: Bundle
) -> None:
    page = visit.page
    closes = demo_bundle.manifest.context.closes

    rejected = httpx.post(f"{server}/predict", json={"closes": closes[:39]})
    assert 400 <= rejected.status_code < 500
    error_body = rejected.json()["error"]
    page.fill("#closes", ", ".join(str(close) for close in closes[:39]))
    page.click("#predict-btn")
    error = page.locator("#predict-error")
    error.wait_for(state="visible")
    shown = error.inner_text()
    assert error_body["message"] in shown
    for item in error_body.get("detail") or []:
        assert (item["msg"] if isinstance(item, dict) else item) in shown
    assert page.locator("#predict-result").inner_text() == ""

    answer = httpx.post(f"{server}/predict", json={"closes": closes}).json()
    page.fill("#closes", "\n".join(str(close) for close in closes))
    page.click("#predict-btn")
    result = page.locator("#predict-result")
    page.wait_for_selector("#predict-result[data-next-close]")
    assert float(result.get_attribute("data-next-close") or "nan") == pytest.approx(
        answer["next_close"]
    )
    assert _money(answer["next_close"]) in result.inner_text()
    assert error.is_hidden()
    visit.assert_clean()


def test_the_page_and_plotly_come_from_the_app(server: str) -> None:
    page = httpx.get(f"{server}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    plotly = httpx.get(f"{server}/vendor/plotly.min.js")
    assert plotly.status_code == 200
    assert "plotly.js v" in plotly.text[:200]
    for asset in ("static/dashboard.js", "static/dashboard.css"):
        assert httpx.get(f"{server}/{asset}").status_code == 200


def test_a_separately_hosted_page_calls_the_api_named_by_the_query(
    browser: Browser, server: str, frontend: str, demo_bundle: Bundle
) -> None:
    context = browser.new_context()
    visit = Visit(context.new_page(), [frontend, server])
    visit.page.goto(f"{frontend}/?api={server}")
    visit.wait_for_demo()
    assert visit.page.locator("#model-name").inner_text() == demo_bundle.name
    assert visit.traces()["predicted"]["x"] == demo_bundle.manifest.evaluation["dates"]
    # The page came from the static host, every API call went cross-origin to the server.
    assert visit.requests[0] == f"{frontend}/?api={server}"
    api_calls = [url for url in visit.requests if url.startswith(server)]
    assert [url.split("?")[0] for url in api_calls] == [
        f"{server}/models",
        f"{server}/models/{MODEL}",
        f"{server}/models/{MODEL}/forecast",
    ]
    visit.assert_clean()
    context.close()


def test_the_served_intervals_are_drawn_as_bands_at_the_chosen_level(
    visit: Visit, server: str, shared_data: Path, demo_bundle: Bundle
) -> None:
    # The demo bundle carries calibrated intervals: the first render already has its 95% bands.
    assert demo_bundle.intervals is not None, "models/fb-lstm has no intervals"
    page = visit.page
    assert page.locator("#chart").get_attribute("data-level") == "95"
    assert {"predicted-lower", "predicted-upper", "horizon-lower", "horizon-upper"} <= set(
        visit.traces()
    )
    csv_path = shared_data / AAPL
    page.set_input_files("#file-input", csv_path)
    page.wait_for_selector(f"#chart[data-source='upload:{AAPL}'][data-level='95'] .main-svg")
    at_95 = visit.traces()
    page.select_option("#level", "80")
    page.wait_for_selector(f"#chart[data-source='upload:{AAPL}'][data-level='80'] .main-svg")
    visit.screenshot("dashboard-level-80.png")
    with csv_path.open("rb") as handle:
        response = httpx.post(
            f"{server}/forecast",
            params={"horizon": HORIZON, "level": 80},
            files={"file": (AAPL, handle)},
        )
    expected = response.json()
    traces = visit.traces()
    for line, rows in (("predicted", expected["points"]), ("horizon", expected["horizon"])):
        assert traces[f"{line}-lower"]["x"] == traces[line]["x"] == [row["date"] for row in rows]
        assert traces[f"{line}-lower"]["y"] == pytest.approx([row["lower"] for row in rows])
        assert traces[f"{line}-upper"]["y"] == pytest.approx([row["upper"] for row in rows])
        widths_80 = [
            u - lo
            for u, lo in zip(
                traces[f"{line}-upper"]["y"], traces[f"{line}-lower"]["y"], strict=True
            )
        ]
        widths_95 = [
            u - lo
            for u, lo in zip(at_95[f"{line}-upper"]["y"], at_95[f"{line}-lower"]["y"], strict=True)
        ]
        assert all(a < b for a, b in zip(widths_80, widths_95, strict=True))
    names = page.evaluate("() => document.getElementById('chart').data.map(t => t.name)")
    assert "80% prediction interval" in names and "80% horizon interval" in names
    assert page.locator("#chart .fills path").count() == 2
    coverage = expected["metrics"]["coverage"]
    assert (
        f"{coverage * 100:.1f} % of them inside their 80% interval"
        in page.locator("#forecast-metrics-caption").inner_text()
    )

    page.click("#predict-btn")
    page.wait_for_selector("#predict-result[data-next-close]")
    result = page.locator("#predict-result").inner_text()
    assert "80% interval $" in result
    visit.assert_clean()


def _wait_for_model(visit: Visit, bundle: Bundle) -> None:
    """Until the page shows `bundle` and has drawn its test month with the horizon."""
    evaluation = bundle.manifest.evaluation
    assert evaluation is not None
    visit.page.wait_for_function(
        """([name, first, horizon]) => {
            const chart = document.getElementById("chart");
            const traces = chart.data || [];
            const predicted = traces.find((t) => t.uid === "predicted");
            const ahead = traces.find((t) => t.uid === "horizon");
            return document.getElementById("model-name").textContent === name
                && predicted && predicted.x[0] === first && ahead && ahead.x.length === horizon;
        }""",
        arg=[bundle.name, evaluation["dates"][0], HORIZON],
    )


def test_switching_models_redraws_every_panel_for_the_chosen_one(
    visit: Visit, server: str, demo_bundle: Bundle
) -> None:
    aapl = ModelStore(STORE).verify(OTHER_MODEL)
    page = visit.page
    options = page.locator("#model-select option")
    assert options.all_inner_texts() == [
        f"{MODEL} (v{demo_bundle.version})",
        f"{OTHER_MODEL} (v{aapl.version})",
    ]

    page.select_option("#model-select", OTHER_MODEL)
    _wait_for_model(visit, aapl)
    visit.screenshot("dashboard-aapl.png")
    evaluation = aapl.manifest.evaluation
    assert evaluation is not None
    assert all(day.startswith("2023-05-") for day in evaluation["dates"])
    traces = visit.traces()
    assert traces["predicted"]["x"] == evaluation["dates"]
    assert traces["predicted"]["y"] == pytest.approx(evaluation["predicted"], rel=1e-6)
    expected = _expected_cells(aapl.manifest.metrics["model"], aapl.manifest.metrics["persistence"])
    assert visit.metric_cells("#metrics") == expected
    assert visit.metric_cells("#forecast-metrics") == expected
    assert page.locator("#model-version").inner_text() == f"v{aapl.version}"

    # The form predicts with the chosen model: its own last closes, its own answer.
    closes = aapl.manifest.context.closes
    answer = httpx.post(f"{server}/models/{OTHER_MODEL}/predict", json={"closes": closes}).json()
    page.fill("#closes", ", ".join(str(close) for close in closes))
    page.click("#predict-btn")
    page.wait_for_selector("#predict-result[data-next-close]")
    shown = float(page.locator("#predict-result").get_attribute("data-next-close") or "nan")
    assert shown == pytest.approx(answer["next_close"])
    assert f"({OTHER_MODEL} v{aapl.version})" in page.locator("#predict-result").inner_text()

    page.select_option("#model-select", MODEL)
    _wait_for_model(visit, demo_bundle)
    assert visit.traces()["predicted"]["x"] == demo_bundle.manifest.evaluation["dates"]  # type: ignore[index]
    visit.assert_clean()
