"""The generated site in a real headless Chromium (Debian's ``chromium`` and ``chromedriver``,
driven by Selenium against the system browser; nothing is downloaded).

Checks: the tables show the records' numbers; sorting a column reorders rows; the filters
hide other presets; a cell's provenance opens on click; every image and audio file loads; no
console error; no request leaves the file system; a tokenizer description of
``<script>alert(1)</script>`` is shown as text and runs nothing.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import soundfile as sf
from lb_fixtures import XSS, write_fixture_results
from lb_generative import write_generative_results

from benchmark.leaderboard.build import build_site
from benchmark.leaderboard.table_model import fmt
from benchmark.pipeline.records import ResultRecord, record_path
from benchmark.registry import REPO_ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (installed by scripts/install.sh --dev)",
)
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--window-size=1400,1000",
)
#: Installed before any page script: records alert/confirm/prompt calls instead of blocking.
TRAP = (
    "window.__alerts = []; for (const f of ['alert', 'confirm', 'prompt']) "
    "{ window[f] = (m) => { window.__alerts.push(String(m)); }; }"
)
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    results = write_fixture_results(root / "results", root / "audio")
    write_generative_results(results)  # generative tasks with audio players, stats, a study
    build = build_site(results, root / "site", REPO_ROOT / "results" / "published", resamples=200)
    return build


@pytest.fixture(scope="module")
def browser(tmp_path_factory, site):
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is installed by scripts/install.sh --dev"
    )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # Both paths given: Selenium Manager is not asked to find (or download) anything.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": TRAP})
        driver.get_log("performance")  # drop the start-up page's events
        driver.get_log("browser")
        driver.get(site.index.resolve().as_uri())
        yield driver
    finally:
        driver.quit()


def _wait(driver, script: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    return driver.execute_script(script)


def _ranked_rows(driver, table_id: str, column: int) -> list[list[str]]:
    """``[tokenizer name, text of column]`` of a table's ranked rows, in page order."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0] + ' tbody.rows-ranked tr'))"
        ".map(r => [r.children[0].childNodes[0].textContent.trim(),"
        " r.children[arguments[1]].textContent.trim()]);",
        f"#{table_id}",
        column,
    )


def test_tables_show_the_records_numbers_and_sort(browser, site):
    from selenium.webdriver.common.by import By

    headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#task-mini-asr thead th")]
    column = next(i for i, h in enumerate(headers) if h.startswith("wer (main)"))
    rows = dict(_ranked_rows(browser, "task-mini-asr", column))
    root = site.results.root
    wer_b = ResultRecord.load(record_path(root, "mini", "tok-b", "asr", 0)).metrics["wer"].value
    assert rows["tok-b"] == fmt(wer_b)
    wer_c = ResultRecord.load(record_path(root, "mini", "tok-c", "asr", 0)).metrics["wer"].value
    assert rows["tok-c"] == fmt(wer_c)
    button = browser.find_elements(By.CSS_SELECTOR, "#task-mini-asr thead th button.sort")[column]
    button.click()
    ascending = [name for name, _ in _ranked_rows(browser, "task-mini-asr", column)]
    assert ascending == ["tok-a", "tok-b", "tok-c"]
    button.click()
    descending = [name for name, _ in _ranked_rows(browser, "task-mini-asr", column)]
    assert descending == ["tok-c", "tok-b", "tok-a"]
    th = browser.find_elements(By.CSS_SELECTOR, "#task-mini-asr thead th")[column]
    assert th.get_attribute("aria-sort") == "descending"
    # reference rows stay in their own group, below the ranked rows
    references = browser.find_elements(
        By.CSS_SELECTOR, "#task-mini-asr tbody.rows-reference tr.row-reference"
    )
    assert [r.text.split()[0] for r in references] == ["cont"]
    name_button = browser.find_elements(By.CSS_SELECTOR, "#task-mini-asr thead th button.sort")[0]
    name_button.click()
    assert [n for n, _ in _ranked_rows(browser, "task-mini-asr", 0)] == ["tok-a", "tok-b", "tok-c"]


def test_filters_and_provenance(browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "filter-preset")).select_by_value("full")
    assert not browser.find_element(By.ID, "task-full-asr").get_attribute("hidden")
    assert browser.find_element(By.ID, "task-mini-asr").get_attribute("hidden")
    Select(browser.find_element(By.ID, "filter-preset")).select_by_value("")
    assert not browser.find_element(By.ID, "task-mini-asr").get_attribute("hidden")
    cell = browser.find_element(
        By.XPATH,
        "//*[@id='task-mini-asr']//tbody[@class='rows-ranked']//tr[2]//button[@class='prov']",
    )
    cell.click()
    dialog = browser.find_element(By.ID, "prov-dialog")
    assert dialog.get_attribute("open") is not None
    text = browser.find_element(By.ID, "prov-body").text
    assert "abc123" in text and "0123456789ab" in text and "passed" in text
    assert "2026-01-02" in text
    browser.find_element(By.ID, "prov-close").click()
    assert dialog.get_attribute("open") is None


def test_images_and_audio_load(browser, site):
    images = _wait(
        browser,
        "const imgs = Array.from(document.images);"
        "return imgs.every(i => i.complete) ? imgs.map(i => [i.src, i.naturalWidth]) : null;",
    )
    assert len(images) >= 8
    assert all(width > 0 for _, width in images), images
    audio = _wait(
        browser,
        "const all = Array.from(document.querySelectorAll('audio'));"
        "return all.every(a => a.readyState >= 1 || a.error) ? "
        "all.map(a => [a.currentSrc, a.readyState, a.error && a.error.code, a.duration]) : null;",
    )
    # tts: output + reference; enhancement: 3 tokenizers x 2 utterances x (generated, noisy
    # input, reference); copy-synthesis: 3 x 2 x (resynthesis, reference)
    assert len(audio) == 2 + 18 + 12
    folder = site.index.parent.resolve()
    for src, state, error, duration in audio:
        assert error is None and state >= 1, src
        path = Path(src.removeprefix("file://"))
        assert path.is_relative_to(folder / "assets" / "audio"), src
        assert duration == pytest.approx(sf.info(path).duration, abs=0.01), src


def test_no_script_runs_from_records_no_console_error_no_network(browser):
    from selenium.webdriver.common.by import By

    shown = [e.text for e in browser.find_elements(By.XPATH, "//span[@class='sub']")]
    assert XSS in shown
    assert browser.execute_script("return window.__alerts") == []
    assert browser.execute_script("return document.scripts.length") == 2
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    requests = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            params = message["params"]
            if params.get("documentURL", "").startswith("file:"):
                requests.append(params["request"]["url"])
    assert any(url.endswith("leaderboard.js") for url in requests), requests
    assert any(url.endswith(".svg") for url in requests)
    leaving = [url for url in requests if not url.startswith(LOCAL_SCHEMES)]
    assert leaving == []
    assert Path(browser.current_url.removeprefix("file://")).name == "index.html"
