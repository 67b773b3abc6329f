"""The receiver's live page, in a real headless Chromium: it must update itself as events arrive."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from composio_logtelemetry.devtools.receiver import Receiver

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver")

MISSING = [
    f"{binary} is missing: install the Debian packages chromium and chromium-driver"
    for binary in (CHROMIUM, CHROMEDRIVER)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK))
]
try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    MISSING.insert(0, "selenium is not installed (pip install selenium)")

WAIT_SECONDS = 15
STACK = 'Traceback (most recent call last):\n  File "tools.py", line 1\nBoom: <b>not bold</b>\n'


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    """On CI (the ``CI`` variable set) a missing browser part fails the tests: a skip would pass."""
    if MISSING:
        if os.environ.get("CI"):
            pytest.fail("; ".join(MISSING), pytrace=False)
        pytest.skip("; ".join(MISSING))
    profile = tempfile.mkdtemp(prefix="composio-logtelemetry-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    browser.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(driver: WebDriver, receiver: Receiver) -> WebDriver:
    """The live page, loaded once before any event; a marker tells whether it ever reloads."""
    driver.get(receiver.url)
    wait(driver).until(
        lambda d: "live" in (d.find_element(By.ID, "status").get_attribute("class") or "")
    )
    driver.execute_script("window.loadedOnce = 'still the same page';")
    return driver


def wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, WAIT_SECONDS, ignored_exceptions=[StaleElementReferenceException])


def post(receiver: Receiver, route: str, body: Any) -> None:
    response = requests.post(f"{receiver.base_url}/{route}", json=body, timeout=10)
    assert response.status_code == 200, response.text


def by_function_name(elements: list[WebElement], name: str) -> list[WebElement]:
    return [element for element in elements if element.get_attribute("data-function-name") == name]


def assert_not_reloaded(driver: WebDriver) -> None:
    assert driver.execute_script("return window.loadedOnce;") == "still the same page"


def test_events_appear_without_reload(page: WebDriver, receiver: Receiver) -> None:
    assert page.find_elements(By.CSS_SELECTOR, "#events li") == []
    post(receiver, "metrics/invocations", [{"functionName": "Tools.execute", "durationMs": 412.34}])
    rows = wait(page).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#events li.event"))
    assert [row.get_attribute("data-function-name") for row in rows] == ["Tools.execute"]
    assert "412.34 ms" in rows[0].find_element(By.CLASS_NAME, "duration").text
    assert rows[0].find_element(By.CLASS_NAME, "time").text.count(":") == 2

    post(receiver, "metrics/invocations", [{"functionName": "Toolkits.list", "durationMs": 3}])
    rows = wait(page).until(
        lambda d: len(found := d.find_elements(By.CSS_SELECTOR, "#events li.event")) == 2 and found
    )
    assert [row.get_attribute("data-function-name") for row in rows] == [
        "Toolkits.list",
        "Tools.execute",
    ]
    assert_not_reloaded(page)


def test_summary_shows_count_errors_and_percentiles(page: WebDriver, receiver: Receiver) -> None:
    post(
        receiver,
        "metrics/invocations",
        [{"functionName": "Tools.execute", "durationMs": float(ms)} for ms in (10, 20, 30)],
    )
    post(receiver, "errors", {"functionName": "Tools.execute", "error": {"name": "Boom"}})

    def summary_rows(d: WebDriver) -> list[WebElement] | None:
        """The summary's rows of Tools.execute, once one of them counts all four events."""
        rows = by_function_name(
            d.find_elements(By.CSS_SELECTOR, "#summary tbody tr"), "Tools.execute"
        )
        if any(row.find_element(By.CLASS_NAME, "count").text == "4" for row in rows):
            return rows
        return None

    [row] = wait(page).until(summary_rows)  # one row per function, updated in place
    assert row.find_element(By.CLASS_NAME, "errors").text == "1"
    assert row.find_element(By.CLASS_NAME, "p50").text == "20.00"
    assert row.find_element(By.CLASS_NAME, "p95").text == "30.00"
    assert not page.find_element(By.ID, "summary-empty").is_displayed()
    assert_not_reloaded(page)


def test_chart_has_one_bar_per_function(page: WebDriver, receiver: Receiver) -> None:
    names = ["Tools.execute", "Toolkits.list", "Triggers.create"]
    post(
        receiver,
        "metrics/invocations",
        [
            {"functionName": name, "durationMs": 10.0 * (index + 1)}
            for index, name in enumerate(names)
        ],
    )
    bars = wait(page).until(
        lambda d: len(found := d.find_elements(By.CSS_SELECTOR, "#chart g.bar")) == 3 and found
    )
    assert sorted(bar.get_attribute("data-function-name") or "" for bar in bars) == sorted(names)
    widths = {
        bar.get_attribute("data-function-name"): float(
            bar.find_element(By.CSS_SELECTOR, "rect.p95").get_attribute("width") or 0
        )
        for bar in bars
    }
    assert widths["Tools.execute"] < widths["Toolkits.list"] < widths["Triggers.create"]
    assert_not_reloaded(page)


def test_clicking_an_error_shows_its_stack(page: WebDriver, receiver: Receiver) -> None:
    post(
        receiver,
        "errors",
        {
            "functionName": "Tools.execute",
            "durationMs": 5,
            "error": {"name": "ToolVersionRequiredError", "message": "No version.", "stack": STACK},
        },
    )
    row = wait(page).until(lambda d: d.find_element(By.CSS_SELECTOR, "#events li.event.error"))
    assert row.find_element(By.CLASS_NAME, "error-name").text == "ToolVersionRequiredError"
    assert row.find_element(By.CLASS_NAME, "error-message").text == "No version."
    stack = row.find_element(By.CSS_SELECTOR, "details.stack pre")
    assert not stack.is_displayed()
    row.find_element(By.CSS_SELECTOR, "details.stack summary").click()
    wait(page).until(lambda d: stack.is_displayed())
    assert stack.get_attribute("textContent") == STACK
    # The next poll must not rebuild the row and fold the stack again.
    post(receiver, "metrics/invocations", [{"functionName": "after"}])
    wait(page).until(
        lambda d: by_function_name(d.find_elements(By.CSS_SELECTOR, "#events li"), "after")
    )
    assert stack.is_displayed()


def test_event_text_is_never_parsed_as_html(page: WebDriver, receiver: Receiver) -> None:
    hostile = '<img src=x onerror="window.injected = true">'
    post(
        receiver,
        "errors",
        {
            "functionName": hostile,
            "error": {"name": "<b>E</b>", "message": hostile, "stack": hostile},
        },
    )
    row = wait(page).until(lambda d: d.find_element(By.CSS_SELECTOR, "#events li.event.error"))
    assert row.find_element(By.CLASS_NAME, "function-name").text == hostile
    assert row.find_element(By.CLASS_NAME, "error-name").text == "<b>E</b>"
    wait(page).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chart g.bar"))
    assert page.find_elements(By.CSS_SELECTOR, "img, b") == []
    assert page.execute_script("return window.injected;") is None
