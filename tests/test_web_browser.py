"""The dashboard as a person uses it: `threadstance serve` in its own process over the seed-thread store,
driven by headless Chromium through Selenium (offline; Debian's chromium and chromium-driver)."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

import pytest
from web_support import XSS_THREAD, cached_store

REPO = Path(__file__).resolve().parent.parent
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and Path(CHROMEDRIVER).is_file()),
    reason="headless browser test needs Debian's chromium and chromium-driver (bash scripts/install_browser.sh)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, seeds_dir: Path, smoke_model: Path) -> Iterator[str]:
    """`threadstance serve` on a free localhost port; yields its base URL."""
    store, model = cached_store(tmp_path_factory.getbasetemp(), seeds_dir, smoke_model)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "serve", "--db", str(store), "--model",
                             str(model), "--port", str(port), "--bootstrap", "200"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(base + "/", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"serve did not start: {proc.stderr.read() if proc.poll() is not None else ''}") from None
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,1000"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(300)  # a loaded 2-core CI machine
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, predicate, timeout: float = 120):  # noqa: ANN001, ANN202
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: predicate(d))


def test_a_person_browses_every_page_filters_trends_and_follows_a_thread(server: str, browser) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    d = browser
    d.get(server + "/")
    assert d.find_element(By.CSS_SELECTOR, "#counts").text.count("threads") == 1
    assert "model" in d.find_element(By.CSS_SELECTOR, ".model").text

    # Trends: the charts are drawn by the locally served chart script, then a filter is clicked.
    d.find_element(By.LINK_TEXT, "Trends").click()
    _wait(d, _charts_drawn, 180)
    rows_before = len(d.find_elements(By.CSS_SELECTOR, "#trend-table tbody tr"))
    old_table = d.find_element(By.ID, "trend-table")
    d.find_element(By.ID, "f-kind-comment").click()  # htmx: only the results are swapped, the URL is pushed
    _wait(d, lambda d: "kind=comment" in d.current_url)
    _wait(d, lambda d: not _attached(old_table))
    _wait(d, _charts_drawn, 180)
    assert parse_qs(urlparse(d.current_url).query)["kind"] == ["comment"]
    assert d.find_element(By.ID, "f-kind-comment").is_selected()
    assert len(d.find_elements(By.CSS_SELECTOR, "#trend-table tbody tr")) <= rows_before
    csv = d.find_element(By.ID, "csv-link").get_attribute("href")
    assert "kind=comment" in csv and "/trends.csv?" in csv
    d.refresh()  # the pushed URL is a bookmarkable page with the same filter
    assert d.find_element(By.ID, "f-kind-comment").is_selected()

    # Threads: search, then follow a thread link; evidence is highlighted, replies are indented.
    d.find_element(By.LINK_TEXT, "Threads").click()
    links = d.find_elements(By.CSS_SELECTOR, "a.thread-link")
    assert len(links) >= 2
    with_evidence = None
    for href in [a.get_attribute("href") for a in links]:
        d.get(href)
        if d.find_elements(By.CSS_SELECTOR, "mark.evidence"):
            with_evidence = href
            break
    assert with_evidence, "no thread shows highlighted evidence"
    mark = d.find_element(By.CSS_SELECTOR, "mark.evidence")
    assert mark.text.strip() and mark.get_attribute("title").startswith("evidence · ")
    assert mark.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)"
    badge = d.find_element(By.CSS_SELECTOR, ".badge[class*='sent-']")
    assert " · " in badge.get_attribute("title")  # every class probability on hover
    reply = d.find_elements(By.CSS_SELECTOR, "article.reply")
    if reply:
        comment = d.find_element(By.CSS_SELECTOR, "article.comment")
        assert reply[0].location["x"] > comment.location["x"]

    # Items: a label filter through the form; the table and the address follow.
    d.find_element(By.LINK_TEXT, "Items").click()
    from selenium.webdriver.support.ui import Select

    count_before = d.find_element(By.ID, "item-count").text
    Select(d.find_element(By.ID, "f-label")).select_by_value("negative")
    _wait(d, lambda d: "label=negative" in d.current_url)
    _wait(d, lambda d: d.find_element(By.ID, "item-count").text != count_before)
    badges = {b.text for b in d.find_elements(By.CSS_SELECTOR, "#item-table td .badge[class*='sent-']")}
    assert badges == {"negative"}

    # Label next: a ranked item links to its thread.
    d.find_element(By.LINK_TEXT, "Label next").click()
    first = d.find_element(By.CSS_SELECTOR, "#suggest-table a.thread-link")
    first.click()
    _wait(d, lambda d: "/thread?id=" in d.current_url)
    assert d.find_element(By.ID, "thread-title").text


def test_hostile_comments_render_as_text_and_run_nothing(server: str, browser) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    d = browser
    for url in (f"/thread?id={XSS_THREAD}", "/items?q=" + quote("<img"), "/threads?q=" + quote("<script>"), "/suggest"):
        d.get(server + url)
        assert d.execute_script("return window.__xss === undefined"), url
        assert not d.find_elements(By.CSS_SELECTOR, "main iframe, main img, main b")
    d.get(server + f"/thread?id={XSS_THREAD}")
    assert "<script>window.__xss = 1</script>" in d.find_element(By.ID, "thread-title").text
    assert "edited · revision 2" in d.find_element(By.ID, "comments").text


def test_an_unknown_thread_is_a_clear_page(server: str, browser) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    browser.get(server + "/thread?id=no-such-thread")
    assert "404 · Not found" in browser.find_element(By.ID, "error").text
    assert "no thread 'no-such-thread' in the store" in browser.find_element(By.ID, "error").text


def _charts_drawn(d) -> bool:  # noqa: ANN001
    """Five charts (sentiment and four targets), each drawn by the chart script (it adds svg.main-svg)."""
    from selenium.webdriver.common.by import By

    charts = d.find_elements(By.CSS_SELECTOR, ".trend-chart[data-drawn]")
    return len(charts) == 5 and all(c.find_elements(By.CSS_SELECTOR, "svg.main-svg") for c in charts)


def _attached(element) -> bool:  # noqa: ANN001
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        element.is_enabled()
        return True
    except StaleElementReferenceException:
        return False
