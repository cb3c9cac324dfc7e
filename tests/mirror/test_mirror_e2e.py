"""End to end: the real daemon mirrors each vendor's directory, and real phones register and call with it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, SipEndpoint, talk
from tests.mirror.conftest import PASSWORDS, REALM
from tests.mirror.fakes import FakeFreePbx, FakeKazoo, FakeWazo, LifelineVendor, in_thread

VENDORS = ["lifeline", "freepbx", "kazoo", "wazo", "file"]


@contextlib.contextmanager
def directory(vendor: str, tmp_path: Path) -> Iterator[tuple[Any, dict[str, Any]]]:
    """A running fake of the vendor (or a file) and the [mirror] section pointing at it."""
    if vendor == "file":
        path = tmp_path / "phones.csv"
        path.write_text("number,password,name\n" + "".join(f"{n},{p},Ext {n}\n" for n, p in PASSWORDS.items()))
        yield None, {"source": "file", "file": str(path)}
        return
    fake = {
        "lifeline": lambda: LifelineVendor(PASSWORDS),
        "freepbx": FakeFreePbx,
        "kazoo": FakeKazoo,
        "wazo": FakeWazo,
    }[vendor]()
    with in_thread(fake.app) as url:
        yield fake, {**fake.mirror_config(url), "interval_s": 3600, "timeout_s": 5}


def start_lifeline(tmp_path: Path, mirror: dict[str, Any]) -> LifelineProcess:
    daemon = LifelineProcess(
        tmp_path / "lifeline",
        {"sip": {"listen": "127.0.0.1", "children": 2}, "cloud": {"realm": REALM}, "mirror": mirror},
    )
    daemon.cli("mode", "survival", "--reason", "mirror e2e")
    daemon.start()
    return daemon


def wait_mirrored(daemon: LifelineProcess, count: int, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mirror = dict(daemon.status()["mirror"])
        if mirror["extensions"] == count and not mirror["syncing"]:
            return mirror
        time.sleep(0.2)
    raise AssertionError(f"the mirror did not reach {count} extensions: {daemon.status()['mirror']}")


def phone(ep: SipEndpoint, daemon: LifelineProcess, number: str, password: str) -> Phone:
    """A phone that uses Lifeline as its registrar (the backup-registrar model)."""
    uri = f"sip:127.0.0.1:{daemon.sip_port}"
    return ep.phone(number, password, domain="127.0.0.1", registrar=uri, proxy=uri + ";lr")


@pytest.mark.parametrize("vendor", VENDORS)
def test_phones_register_and_call_with_mirrored_credentials(
    vendor: str, sip_endpoint: SipEndpoint, tmp_path: Path
) -> None:
    ep = sip_endpoint
    with directory(vendor, tmp_path) as (_fake, mirror):
        daemon = start_lifeline(tmp_path, mirror)
        try:
            status = wait_mirrored(daemon, 3)
            assert status["health"] == "fresh" and status["source"] == vendor
            assert daemon.status()["mode"]["mode"] == "survival"
            alice = phone(ep, daemon, "2001", PASSWORDS["2001"])
            bob = phone(ep, daemon, "2002", PASSWORDS["2002"])
            assert alice.register() == 200
            assert bob.register() == 200
            talk(ep, alice, bob, "2002", caller_hangs_up=True)
            alice.shutdown()
            bob.shutdown()
            ep.phones.clear()
        finally:
            daemon.stop()


def test_deleted_extension_is_refused_and_new_password_works_without_restart(
    sip_endpoint: SipEndpoint, tmp_path: Path
) -> None:
    ep = sip_endpoint
    with directory("lifeline", tmp_path) as (fake, mirror):
        daemon = start_lifeline(tmp_path, mirror)
        try:
            wait_mirrored(daemon, 3)
            kamailio = daemon.status()["sip"]["kamailio"]
            carol = phone(ep, daemon, "2003", PASSWORDS["2003"])
            assert carol.register() == 200
            fake.remove("2003")
            fake.set_password("2002", "brand-new-secret-2002")
            done = daemon.cli("mirror", "sync")
            assert "1 changed, 1 deleted" in done.stdout
            assert carol.register() == 401  # deleted: it can no longer register
            old = phone(ep, daemon, "2002", PASSWORDS["2002"])
            assert old.register() == 401
            new = phone(ep, daemon, "2002", "brand-new-secret-2002")
            assert new.register() == 200
            after = daemon.status()["sip"]["kamailio"]
            assert (after["pid"], after["restarts"]) == (kamailio["pid"], kamailio["restarts"])
            text = daemon.cli("status").stdout
            assert "mirror:        lifeline" in text and "2 extensions" in text
            for p in (carol, old, new):
                p.shutdown()
            ep.phones.clear()
        finally:
            daemon.stop()
