"""The status page of a pair's box in a real browser (Debian's chromium, Selenium): role, peer, who decides.

Two real daemons as an [ha] pair in namespaces (gateway.lab.pair_lab); the browser runs on the LAN
(the phones' namespace) and opens box B's status page over HTTPS, trusting its certificate by its key.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from gateway.lab.netns import inside, kill_all_in
from gateway.lab.pair_lab import PairLab
from gateway.lab.waits import wait_until
from gateway.sip.dmq import SETTLED_LOG, START_SETTLED_S
from tests.conftest import REALM
from tests.web.test_status_page_browser import CHROMEDRIVER, chrome_options, full_page, press

FAILOVER_S = 10  # three missed adverts plus skew (tests/ha/test_failover.py)
_tags = itertools.count()


@pytest.fixture
def pair(extensions_csv: Path) -> Iterator[tuple[PairLab, str]]:
    """Both boxes up (A active, B standby, replicating both ways); B's admin password."""
    tag = f"w{os.getpid() % 1000}{next(_tags) % 10}"
    workdir = Path(tempfile.mkdtemp(prefix=f"ll{tag}-"))  # short: unix socket paths live in it
    lab = PairLab(workdir, tag, extensions_csv, REALM)
    try:
        password = lab.b.cli("admin", "password").stdout.splitlines()[1]
        lab.start(lab.a)
        wait_until(lambda: lab.role(lab.a) == "active", "box A to take the shared address", FAILOVER_S, 0.05)
        lab.start(lab.b)
        wait_until(lambda: lab.role(lab.b) == "standby", "box B to be standby", FAILOVER_S, 0.05)

        def settled() -> bool:
            links = [box.status()["ha"]["peer_health"]["replication"] for box in (lab.a, lab.b)]
            return lab.b.logged(SETTLED_LOG) and links == ["active", "active"]

        wait_until(
            settled, "B's start to settle and both boxes' DMQ to see the other active", START_SETTLED_S + 30, 0.5
        )
        yield lab, password
    finally:
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)


def field(driver: webdriver.Chrome, name: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, f"[data-field={name}]").text)


def test_the_page_shows_the_pair_and_follows_a_takeover_live(pair: tuple[PairLab, str], tmp_path: Path) -> None:
    lab, password = pair
    status = lab.b.status()
    base = str(status["api"]["url"]).removesuffix("/api/v1/")
    options = chrome_options(tmp_path / "profile", Path(status["api"]["certificate"]))
    with inside(lab.ns["lan"]):  # chromedriver, chromium and the client's sockets on the office LAN
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            driver.get(f"{base}/ui/login")
            driver.find_element(By.ID, "password").send_keys(password)
            press(driver, "login")
            assert field(driver, "pair_role") == "standby, shared address 10.203.1.70/24"
            assert field(driver, "pair_mode") == "following the active box (survival)"
            peer = field(driver, "pair_peer")
            assert peer.startswith("up: heard ") and "replication lag " in peer and "it is active in survival" in peer
            assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
            full_page(driver, tmp_path / "pair-standby.png")
            # A power cut on box A: the page, not reloaded, shows B taking over and deciding, A silent.
            driver.execute_script("window.notReloaded = true;")
            kill_all_in(lab.ns["a"], power_cut=True)
            WebDriverWait(driver, FAILOVER_S + 5, poll_frequency=0.2).until(
                lambda d: (
                    field(d, "pair_role").startswith("active")
                    and field(d, "pair_peer").startswith("SILENT")
                    and field(d, "pair_mode").startswith("decided by this box")
                ),
                "the page never showed box B active, deciding, with A silent",
            )
            assert driver.execute_script("return window.notReloaded === true")
            full_page(driver, tmp_path / "pair-took-over.png")
            print(f"pair page screenshots: {tmp_path}")
        finally:
            driver.quit()
