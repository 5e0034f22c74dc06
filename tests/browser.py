"""A headless Debian chromium driven by selenium, for the explorer's browser tests.

Nothing is downloaded: the driver is /usr/bin/chromedriver (Debian's chromium-driver, which
`make test` installs). A missing browser fails the tests with the command that installs it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
WAIT_SECONDS = 60
"""Longest wait for a page condition (the machine may be loaded; conditions, not sleeps)."""


@contextmanager
def headless_chromium() -> Iterator[object]:
    """A selenium WebDriver on a fresh headless chromium profile, quit afterwards."""
    if not CHROMEDRIVER.is_file() or not CHROMIUM.is_file():
        pytest.fail(
            f"the browser tests need {CHROMIUM} and {CHROMEDRIVER}: "
            "run `apt-get install -y chromium chromium-driver` (or `make test`, which does)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="emovlm-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
