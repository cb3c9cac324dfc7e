"""The status page in a real browser: Debian's chromium, driven by Selenium, against the real daemon.

The daemon relays to the lab cloud (a real Kamailio on 127.0.0.2) and serves its network API, with the
status page, over HTTPS on loopback with its own certificate, which the browser trusts by its key alone
(--ignore-certificate-errors-spki-list). The browser has a phone's window. Screenshots go to a
temporary directory whose path the test prints.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from gateway.cdr.labsink import seed_records
from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import SipEndpoint
from gateway.store import Store
from tests.conftest import CLOUD_HOST, PASSWORDS, REALM

CHROMEDRIVER = "/usr/bin/chromedriver"  # Debian's chromium-driver (install.sh --dev)
PHONE = (412, 915)  # CSS pixels of a common phone screen
RECORDS = 3


def spki_hash(certificate: Path) -> str:
    """What --ignore-certificate-errors-spki-list takes: base64 of the SHA-256 of the certificate's public key."""
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def chrome_options(profile: Path, certificate: Path) -> webdriver.ChromeOptions:
    """Headless chromium the size of a phone, trusting the daemon's own certificate by its key, nothing else."""
    options = webdriver.ChromeOptions()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={PHONE[0]},{PHONE[1]}",
        f"--ignore-certificate-errors-spki-list={spki_hash(certificate)}",
    ):
        options.add_argument(flag)
    return options


@pytest.fixture
def daemon(cloud: LabCloud, extensions_csv: Path) -> Iterator[tuple[LifelineProcess, dict[str, Any], str, str]]:
    work = Path(tempfile.mkdtemp(prefix="ll-ui-"))  # short: the unix socket's path has a 108-byte limit
    process = LifelineProcess(
        work, {"cloud": {"sbc": cloud.uri, "realm": REALM}, "sip": {"listen": "127.0.0.1", "children": 2}}
    )
    try:
        password = process.cli("admin", "password").stdout.splitlines()[1]  # also makes the store
        viewer = process.cli("admin", "password", "--viewer").stdout.splitlines()[1]
        process.cli("extensions", "import", str(extensions_csv))  # a phone registers in SURVIVAL below
        store = Store(work / "data" / "lifeline.db")
        try:
            seed_records(store, RECORDS, sinks=[])
        finally:
            store.close()
        yield process, process.start(), password, viewer
    finally:
        process.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def browser(daemon: tuple[LifelineProcess, dict[str, Any], str, str], tmp_path: Path) -> Iterator[webdriver.Chrome]:
    _, status, _, _ = daemon
    options = chrome_options(tmp_path / "profile", Path(status["api"]["certificate"]))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield driver
    finally:
        driver.quit()


def full_page(driver: webdriver.Chrome, path: Path) -> None:
    """A screenshot of the whole page, below the fold too."""
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))


def badge(driver: webdriver.Chrome) -> str:
    return str(driver.find_element(By.ID, "mode-badge").text)


def wait_for_badge(driver: webdriver.Chrome, text: str, timeout: float) -> None:
    # A page being replaced (after a form's POST) has its elements go away under the finger: look again.
    ignored = (NoSuchElementException, StaleElementReferenceException)
    WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=ignored).until(
        lambda d: badge(d) == text, f"the mode badge never showed {text}"
    )


def press(driver: webdriver.Chrome, button: str) -> None:
    """Click a form's button and wait until the page it leads to has replaced this one."""
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, button).click()

    def replaced(_d: webdriver.Chrome) -> bool:
        # Stale, or (chromedriver, mid-navigation) "Node with given id does not belong to the document".
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as err:
            if "does not belong to the document" in str(err):
                return True
            raise
        return False

    WebDriverWait(driver, 10).until(replaced, f"{button}: the page stayed")
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")


@pytest.mark.usefixtures("fresh_phones")
def test_log_in_watch_the_mode_change_live_force_it_and_download_the_call_records(
    cloud: LabCloud,
    daemon: tuple[LifelineProcess, dict[str, Any], str, str],
    browser: webdriver.Chrome,
    tmp_path: Path,
    sip_endpoint: SipEndpoint,
) -> None:
    _, status, password, viewer = daemon
    base = str(status["api"]["url"]).removesuffix("/api/v1/")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"status page screenshots: {shots}")

    # The box's address alone leads to the login.
    browser.get(f"{base}/")
    assert browser.current_url == f"{base}/ui/login"
    browser.save_screenshot(str(shots / "1-login.png"))
    browser.find_element(By.ID, "password").send_keys(password)
    press(browser, "login")
    assert browser.current_url == f"{base}/ui/"
    wait_for_badge(browser, "NORMAL", 5)
    assert browser.find_element(By.CSS_SELECTOR, "[data-field=override]").text == "automatic"
    # A phone's screen: nothing wider than the window.
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    browser.save_screenshot(str(shots / "2-normal.png"))

    # Force SURVIVAL, then back to automatic (NORMAL: the cloud answers).
    press(browser, "force-survival")
    wait_for_badge(browser, "SURVIVAL", 10)
    assert "Forced SURVIVAL." in browser.find_element(By.TAG_NAME, "main").text
    assert browser.find_element(By.CSS_SELECTOR, "[data-field=override]").text == "manual override: survival"
    browser.save_screenshot(str(shots / "3-forced-survival.png"))
    press(browser, "force-auto")
    assert "Back to automatic detection." in browser.find_element(By.TAG_NAME, "main").text
    wait_for_badge(browser, "NORMAL", 10)
    assert browser.find_element(By.CSS_SELECTOR, "[data-field=override]").text == "automatic"

    # Cut the cloud: the page, not reloaded (the marker survives), turns to SURVIVAL by itself.
    browser.execute_script("window.notReloaded = true;")
    cut = time.monotonic()
    cloud.pause()
    wait_for_badge(browser, "SURVIVAL", 20)
    print(f"the page showed SURVIVAL {time.monotonic() - cut:.1f} s after the cut")
    assert browser.execute_script("return window.notReloaded === true")
    assert "mode-survival" in str(browser.find_element(By.ID, "mode-badge").get_attribute("class"))
    assert browser.find_element(By.CSS_SELECTOR, "[data-field=sip_probe]").text == "NOT answering"
    assert "survival" in browser.find_element(By.ID, "changes").text  # the timeline's list, updated in place
    full_page(browser, shots / "4-survival-live.png")

    # The call records as a CSV download.
    browser.find_element(By.ID, "download-cdr").click()
    downloads = tmp_path / "downloads"
    WebDriverWait(browser, 10, poll_frequency=0.2).until(
        lambda _: [p for p in downloads.glob("lifeline-cdr-*.csv")], "no CSV downloaded"
    )
    time.sleep(0.3)  # the file is renamed from .crdownload once complete; let it settle
    (csv,) = downloads.glob("lifeline-cdr-*.csv")
    rows = csv.read_text().splitlines()
    assert len(rows) == RECORDS and all('"ANSWERED"' in row for row in rows)

    # Log out: the page is gone, the login is back.
    press(browser, "logout")
    assert browser.current_url == f"{base}/ui/login"
    browser.get(f"{base}/ui/")
    assert browser.current_url == f"{base}/ui/login"
    browser.save_screenshot(str(shots / "5-logged-out.png"))

    # Office IT's read-only login: the same page without the action buttons, the download still there;
    # a phone registered meanwhile (Lifeline serves it: the cloud is still cut) shows in the phone table,
    # laid out for the phone's screen.
    proxy = f"sip:127.0.0.1:{status['sip']['port']};lr"
    phone = sip_endpoint.phone("1001", PASSWORDS["1001"], domain=CLOUD_HOST, registrar=cloud.uri, proxy=proxy)
    assert phone.register() == 200
    browser.find_element(By.ID, "password").send_keys(viewer)
    press(browser, "login")
    WebDriverWait(browser, 10, poll_frequency=0.2).until(
        lambda d: "1001" in d.find_element(By.ID, "phone-rows").text, "the phone never showed in the table"
    )
    assert "SURVIVAL (local)" in browser.find_element(By.ID, "phone-rows").text
    # A narrow screen: no column heads, each cell a line headed by its label (::before, from data-label).
    layout = "var td = document.querySelector('#phone-rows td'); return [getComputedStyle(td).display,"
    layout += (
        " getComputedStyle(td, '::before').content, getComputedStyle(document.querySelector('.phones thead')).display]"
    )
    assert browser.execute_script(layout) == ["flex", '"Ext."', "none"]
    assert browser.current_url == f"{base}/ui/" and browser.find_element(By.ID, "read-only").text == "read-only"
    for button in ("force-survival", "force-normal", "force-auto", "sync", "run-drill"):
        assert not browser.find_elements(By.ID, button), button
    assert browser.find_element(By.ID, "download-cdr").is_displayed()
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    full_page(browser, shots / "6-viewer.png")
