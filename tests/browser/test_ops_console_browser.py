"""The ops console in a real browser: Debian's headless Chromium, driven by selenium.

One scenario against a running gateway and its 112 simulator: log in, watch a report's
delivery appear live, filter to it, open its SOP timeline, let 112 refuse a message so
it parks, fix 112, replay it from the page and watch it delivered. Report text and a
recipient's answer that carry HTML never execute. Screenshots go to tests/artifacts/.
A burst of deliveries asks the gateway for the panels about once a second, not once
per delivery.
"""

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from gateway_support import RunningGateway, eventually, running_gateway
from partner_support import ADMIN_TOKEN, admin, delete_partners, partner, subscribe
from samples import fixture_json, personal_strings
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
OPS_TOKEN = "ops-token-for-browser-tests-0123456789"
HOSTILE = '<script>window.__xss = 1</script><img src="x" onerror="window.__xss = 1">'
WAIT_S = 10
BURST = 40
MIN_REFRESH_GAP_S = 1.0  # ops.js MIN_REFRESH_GAP_MS
COUNT_PANEL_ASKS = """
window.__panelAsks = 0;
const original = window.fetch;
window.fetch = (input, init) => {
  if (String(input).startsWith("/v1/ops/recipients")) { window.__panelAsks += 1; }
  return original(input, init);
};
"""
T = TypeVar("T")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        subprocess.run([str(ROOT / "scripts" / "ensure-browser.sh")], check=True)
    os.environ["SE_OFFLINE"] = "true"  # selenium manager must never fetch a browser
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1440,1100")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _report(reference: str) -> bytes:
    """valid-01 under another id_laporan, with HTML in its narrative."""
    report = fixture_json("valid-01-app-basic.json")
    report["id_laporan"] = reference
    report["kronologi"] = "Pelapor mendengar teriakan. " + HOSTILE
    return json.dumps(report).encode()


def _shot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def _rows(driver: WebDriver, tbody: str, case_id: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, f'#{tbody} tr[data-case-id="{case_id}"]')


def _wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    """Panels are redrawn every few seconds: an element found may go stale, so look again."""
    return WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))


def _click(driver: WebDriver, selector: str) -> bool:
    driver.find_element(By.CSS_SELECTOR, selector).click()
    return True


async def test_watch_filter_open_park_and_replay(browser: WebDriver, tmp_path: Path) -> None:
    async with running_gateway(tmp_path, ops_token=OPS_TOKEN, sla_scale=60.0) as gw:
        loop = asyncio.get_running_loop()

        def on_loop(work: Coroutine[Any, Any, T]) -> T:
            return asyncio.run_coroutine_threadsafe(work, loop).result(timeout=WAIT_S)

        await asyncio.to_thread(_scenario, browser, gw, on_loop)


def _log_in(driver: WebDriver, gw: RunningGateway) -> None:
    driver.get(str(gw.client.make_url("/ops")))
    driver.find_element(By.ID, "token").send_keys(OPS_TOKEN)
    driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    _wait(driver).until(ec.text_to_be_present_in_element((By.ID, "live-state"), "langsung"))


def _scenario(driver: WebDriver, gw: RunningGateway, on_loop: Any) -> None:
    wait = _wait(driver)
    _log_in(driver, gw)

    status, first = on_loop(gw.post_report(_report("SLP-BROWSER-1")))
    assert status == 202
    case_id = first["case_id"]
    wait.until(
        lambda d: d.find_elements(
            By.CSS_SELECTOR, f'#log-rows tr.outcome-delivered[data-case-id="{case_id}"]'
        )
    )

    driver.find_element(By.ID, "f-q").send_keys(case_id)
    driver.find_element(By.CSS_SELECTOR, "#filter-form button[type=submit]").click()
    wait.until(
        lambda d: (
            (rows := d.find_elements(By.CSS_SELECTOR, "#log-rows tr"))
            and all(r.get_attribute("data-case-id") == case_id for r in rows)
        )
    )

    _rows(driver, "log-rows", case_id)[0].find_element(By.CSS_SELECTOR, "button.open-case").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "case-id"), case_id))
    steps = driver.find_elements(By.CSS_SELECTOR, "#timeline .step")
    assert steps, "no SOP step drawn"
    assert steps[0].get_attribute("data-step") == "6", "a case needing 112 starts at SOP 6"
    statuses = {s.get_attribute("data-status") for s in steps}
    assert statuses <= {"pending", "warning", "breached", "met", "skipped"}

    # 112 refuses (400, its answer carrying HTML): the message parks
    on_loop(gw.sim.put("/_sim/mode", json={"mode": "reject", "reason": HOSTILE}))
    status, second = on_loop(gw.post_report(_report("SLP-BROWSER-2")))
    assert status == 202
    parked_case = second["case_id"]
    search = driver.find_element(By.ID, "f-q")
    search.clear()
    search.send_keys(parked_case)
    driver.find_element(By.CSS_SELECTOR, "#filter-form button[type=submit]").click()
    wait.until(
        lambda d: d.find_elements(
            By.CSS_SELECTOR, f'#log-rows tr.outcome-parked[data-case-id="{parked_case}"]'
        )
    )
    parked_row = f'#parked-rows tr[data-case-id="{parked_case}"]'
    reason = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f"{parked_row} td.reason").text)
    assert "<img" in reason, "the answer's HTML is shown as text"
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#at-risk-rows td.countdown"))
    wait.until(lambda d: _click(d, f"{parked_row} button.open-case"))
    wait.until(ec.text_to_be_present_in_element((By.ID, "case-id"), parked_case))
    _shot(driver, "ops-console-parked")

    on_loop(gw.sim.put("/_sim/mode", json={"mode": "ok"}))
    wait.until(lambda d: _click(d, f"{parked_row} button.replay"))
    wait.until(
        lambda d: d.find_elements(
            By.CSS_SELECTOR, f'#log-rows tr.outcome-delivered[data-case-id="{parked_case}"]'
        )
    )
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, parked_row))
    _shot(driver, "ops-console-replayed")

    assert driver.execute_script("return window.__xss === undefined") is True
    assert not driver.find_elements(By.CSS_SELECTOR, "main img, main script")
    page_text = driver.find_element(By.TAG_NAME, "body").text
    assert not [s for s in personal_strings() if s in page_text]
    driver.find_element(By.ID, "lang-en").click()
    assert driver.find_element(By.CSS_SELECTOR, "#recipients-panel h2").text == "Recipients"
    driver.get("about:blank")  # closes the live stream before the gateway stops


async def test_a_subscription_whose_partner_answered_410_shows_as_stopped(
    browser: WebDriver, tmp_path: Path
) -> None:
    async with (
        running_gateway(
            tmp_path, ops_token=OPS_TOKEN, admin_token=ADMIN_TOKEN, push_attempts=1
        ) as gw,
        partner() as receiver,
    ):
        try:
            created = await subscribe(
                gw,
                agency_id="lbh-apik",
                role="social",
                patterns=["case.#"],
                delivery={"mode": "webhook", "url": receiver.url, "secret": receiver.secret},
            )
            one = f"/v1/subscriptions/{created['subscription_id']}"
            await receiver.set_mode(mode="fail", status=410)
            status, _ = await gw.post_report(_report("SLP-BROWSER-GONE"))
            assert status == 202

            async def gone() -> bool:
                return bool((await admin(gw, "GET", one))["status"] == "gone")

            await eventually(gone, WAIT_S, "the subscription gone after its partner's 410")
            await asyncio.to_thread(_shows_stopped, browser, gw, created["subscription_id"])
        finally:
            await delete_partners(gw)


def _shows_stopped(driver: WebDriver, gw: RunningGateway, subscription_id: str) -> None:
    _log_in(driver, gw)
    row = f'#recipient-rows tr[data-recipient="{subscription_id}"]'
    _wait(driver).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, row), "410"))
    shown = driver.find_element(By.CSS_SELECTOR, row)
    assert "circuit-gone" in (shown.get_attribute("class") or "")
    driver.find_element(By.ID, "lang-en").click()
    _wait(driver).until(
        ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, f"{row} td.circuit"), "stopped: the partner answered 410"
        )
    )
    assert driver.find_element(By.ID, "live-state").text == "● live"
    _shot(driver, "ops-console-subscription-gone")
    driver.get("about:blank")


async def test_a_burst_of_deliveries_asks_for_the_panels_about_once_a_second(
    browser: WebDriver, tmp_path: Path
) -> None:
    async with running_gateway(tmp_path, ops_token=OPS_TOKEN) as gw:
        loop = asyncio.get_running_loop()

        def on_loop(work: Coroutine[Any, Any, T]) -> T:
            return asyncio.run_coroutine_threadsafe(work, loop).result(timeout=WAIT_S)

        await asyncio.to_thread(_burst, browser, gw, on_loop)


def _burst(driver: WebDriver, gw: RunningGateway, on_loop: Any) -> None:
    _log_in(driver, gw)
    driver.execute_script(COUNT_PANEL_ASKS)
    started = time.monotonic()
    for n in range(BURST):
        status, _ = on_loop(gw.post_report(_report(f"SLP-BURST-{n}")))
        assert status == 202
    _wait(driver).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#log-rows tr.outcome-delivered")) >= BURST
    )
    time.sleep(MIN_REFRESH_GAP_S + 0.5)  # the trailing refresh of the burst
    elapsed_s = time.monotonic() - started
    asks = driver.execute_script("return window.__panelAsks")
    # one per delivery before asks were merged
    assert 1 <= asks <= elapsed_s / MIN_REFRESH_GAP_S + 2, (asks, elapsed_s)
    driver.get("about:blank")
