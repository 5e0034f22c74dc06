"""The run explorer in a real headless chromium: served over loopback, and as a static file."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from browser import WAIT_SECONDS, headless_chromium
from emovlm.view.export import write_static_page
from emovlm.view.runs import open_runs
from emovlm.view.server import make_server
from view_runs import SCRIPT_ANSWER, other_predictions, reference_predictions, write_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("view-browser")
    write_run(root / "vlm", "vlm", reference_predictions())
    write_run(root / "msce", "msce", other_predictions())
    return open_runs([root / "vlm", root / "msce"])


@pytest.fixture(scope="module")
def url(runs) -> Iterator[str]:
    server = make_server(runs, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}/"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def static_url(runs, tmp_path_factory) -> str:
    path = write_static_page(runs, tmp_path_factory.mktemp("static") / "explorer.html")
    return path.as_uri()


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as driver:
        yield driver


def wait(driver, condition, message: str):
    return WebDriverWait(driver, WAIT_SECONDS).until(condition, message)


def open_page(driver, address: str) -> None:
    driver.get(address)
    wait(
        driver,
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1",
        f"the explorer at {address} did not finish loading; page error: "
        + driver.find_element(By.ID, "error").text,
    )


def row_ids(driver, body: str) -> set[str]:
    return {
        row.get_attribute("data-id")
        for row in driver.find_elements(By.CSS_SELECTOR, f"#{body} tr[data-id]")
    }


def wait_loaded(driver, body: str, marker: str) -> None:
    wait(
        driver,
        lambda d: marker in (d.find_element(By.ID, body).get_attribute("data-loaded") or ""),
        f"#{body} was not reloaded with {marker}",
    )


def click_cell(driver, gold: str, pred: str) -> None:
    selector = f'#confusion button[data-gold="{gold}"][data-pred="{pred}"]'
    driver.find_element(By.CSS_SELECTOR, selector).click()
    wait_loaded(driver, "sample-rows", f'"pred":"{pred}"')


def open_detail(driver, body: str, sample_id: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'#{body} tr[data-id="{sample_id}"]').click()
    wait(
        driver,
        lambda d: d.find_element(By.ID, "detail").get_attribute("data-sample") == sample_id,
        f"the detail of {sample_id} did not open",
    )


def check_confusion_cell(driver) -> None:
    """Gold sad answered neutral holds s01 and s07; s01 shows its answer, thumbnails, sentences."""
    click_cell(driver, "sad", "neutral")
    assert row_ids(driver, "sample-rows") == {"s01", "s07"}
    assert driver.find_element(By.ID, "sample-total").text == "2 samples"
    open_detail(driver, "sample-rows", "s01")
    assert driver.find_element(By.ID, "detail-raw").text == "Neutral: the face shows little."
    images = driver.find_elements(By.CSS_SELECTOR, "#detail-thumbs img")
    assert [i.get_attribute("alt") for i in images] == ["keyframe 0", "keyframe 1"]
    wait(
        driver,
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('#detail-thumbs img')]"
            ".every((i) => i.complete && i.naturalWidth === 128)"
        ),
        "the thumbnails did not load as 128-pixel-wide JPEGs",
    )
    sentences = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#detail-sentences li")]
    assert sentences == ["frames 0–5: the mouth corners drop", "frames 5–10: the eyes close slowly"]


def check_script_answer_is_text(driver) -> None:
    """An answer with <script> and markup shows as its exact text and runs nothing."""
    click_cell(driver, "surprise", "surprise")
    assert row_ids(driver, "sample-rows") == {"s04"}
    assert (
        SCRIPT_ANSWER in driver.find_element(By.CSS_SELECTOR, '#sample-rows tr[data-id="s04"]').text
    )
    open_detail(driver, "sample-rows", "s04")
    assert driver.find_element(By.ID, "detail-raw").text == SCRIPT_ANSWER
    assert driver.find_elements(By.ID, "injected") == []
    assert driver.execute_script("return window.__pwned === undefined")


def check_timeline(driver) -> None:
    """A video's per-frame timeline: one line per label, broken where the face is missing."""
    click_cell(driver, "neutral", "neutral")
    open_detail(driver, "sample-rows", "s09")
    assert driver.find_element(By.ID, "detail-timeline-box").is_displayed()
    lines = driver.find_elements(By.CSS_SELECTOR, "#detail-timeline polyline")
    assert len(lines) == 2 * 7  # every label's line has two parts around the faceless frame
    assert (
        driver.find_element(By.ID, "detail-thumbs").text == "no thumbnails stored for this sample"
    )


def check_out_of_set_filter(driver) -> None:
    """Filtering by the out-of-set word "pain" finds exactly the two samples answered "pain"."""
    driver.find_element(By.ID, "tab-samples").click()
    field = driver.find_element(By.ID, "filter-oos")
    field.clear()
    field.send_keys("pain")
    driver.find_element(By.ID, "filter-apply").click()
    wait_loaded(driver, "sample-rows", '"oos":"pain"')
    assert row_ids(driver, "sample-rows") == {"s03", "s10"}


def check_compare(driver) -> None:
    """Comparing with the second run lists its fixed and broken samples."""
    driver.find_element(By.ID, "tab-compare").click()
    wait_loaded(driver, "change-rows", "fixed|1|0")
    assert row_ids(driver, "change-rows") == {"s01", "s03", "s05", "s07"}
    assert driver.find_element(By.ID, "change-fixed").text == "fixed (4)"
    per_class = driver.find_element(By.ID, "compare-per-class").text
    assert "sad 3 0.000 0.667 0.667 " in per_class
    driver.find_element(By.ID, "change-broken").click()
    wait_loaded(driver, "change-rows", "broken|1|0")
    assert row_ids(driver, "change-rows") == {"s02"}
    open_detail(driver, "change-rows", "s02")
    assert driver.find_element(By.ID, "detail-raw").text == "The person looks neutral."


@pytest.mark.parametrize(
    "check",
    [
        check_confusion_cell,
        check_script_answer_is_text,
        check_timeline,
        check_out_of_set_filter,
        check_compare,
    ],
)
def test_served_explorer(browser, url, check):
    open_page(browser, url)
    check(browser)


@pytest.mark.parametrize(
    "check",
    [
        check_confusion_cell,
        check_script_answer_is_text,
        check_timeline,
        check_out_of_set_filter,
        check_compare,
    ],
)
def test_static_page(browser, static_url, check):
    open_page(browser, static_url)
    assert "Static page: it holds 12 of 12" in browser.find_element(By.ID, "static-note").text
    check(browser)


def test_switching_runs_shows_the_other_runs_matrix(browser, url):
    open_page(browser, url)
    Select(browser.find_element(By.ID, "run-select")).select_by_value("1")
    wait(
        browser,
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-run") == "1",
        "the second run did not open",
    )
    click_cell(browser, "sad", "sad")
    assert row_ids(browser, "sample-rows") == {"s01", "s07"}


def test_full_frames_button_says_why_none_are_shown(browser, url, static_url):
    open_page(browser, url)
    click_cell(browser, "sad", "neutral")
    open_detail(browser, "sample-rows", "s01")
    browser.find_element(By.ID, "detail-full-button").click()
    reason = wait(
        browser,
        lambda d: d.find_elements(By.ID, "detail-full-reason"),
        "the full-frames button showed no answer",
    )
    assert reason[0].text == "the dataset is not mounted: /data/test does not exist"
    open_page(browser, static_url)
    click_cell(browser, "sad", "neutral")
    open_detail(browser, "sample-rows", "s01")
    assert not browser.find_element(By.ID, "detail-full-button").is_displayed()
