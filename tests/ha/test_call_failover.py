"""A call set up through box A ends through box B after A dies: both sign Record-Route with the pair key.

Real daemons (Kamailio, keepalived) in namespaces (gateway.lab.pair_lab), pjsua2 phones on the LAN,
registered through the shared address only. Media flows phone to phone, so only the BYE needs box B.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import socket
import sqlite3
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.lab.daemon import LifelineProcess
from gateway.lab.netns import inside
from gateway.lab.pair_lab import PHONES, VIP, PairLab, contacts
from gateway.lab.phones import Phone, PhoneCall, SipEndpoint
from gateway.lab.waits import wait_until
from tests.conftest import CLOUD_HOST, PASSWORDS, REALM

pytestmark = pytest.mark.usefixtures("fresh_phones")

FAILOVER_S = 10  # three missed adverts plus skew (tests/ha/test_failover.py)
QUICK_SWEEP = {"ring_timeout_s": 5}  # open records are looked at every ring_timeout_s / 2 (gateway/cdr/service.py)
_tags = itertools.count()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short work directory: Kamailio's RPC socket path must fit a unix socket's ~100 bytes."""
    path = Path(tempfile.mkdtemp(prefix=f"llc{os.getpid() % 1000}-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def running_pair(
    workdir: Path, extensions_csv: Path, ep: SipEndpoint, one_key: bool, cdr: dict[str, object] | None = None
) -> Iterator[PairLab]:
    """Both boxes up, A holding the shared address, B standby; this thread (and the phones) on the LAN."""
    tag = f"c{os.getpid() % 1000}{next(_tags) % 10}"
    lab = PairLab(workdir, tag, extensions_csv, REALM, one_key=one_key, cdr=cdr)
    try:
        lab.start(lab.a)
        wait_until(lambda: lab.role(lab.a) == "active", "box A to take the shared address", FAILOVER_S, 0.05)
        lab.start(lab.b)
        wait_until(lambda: lab.role(lab.b) == "standby", "box B to be standby", FAILOVER_S, 0.05)
        with inside(lab.ns["lan"]):
            yield lab
            ep.reset()
    finally:
        lab.close()


class SipOnTheLan:
    """Every SIP message over UDP through the LAN bridge, as text: what a capture on the office LAN shows."""

    def __init__(self) -> None:
        # Made inside the LAN namespace (running_pair): br0 carries the phones' traffic both ways.
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self.sock.bind(("br0", 0))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self.sock.recv(65535)
            except TimeoutError:
                continue
            ip = frame[14:]
            if len(ip) < 28 or frame[12:14] != b"\x08\x00" or ip[9] != socket.IPPROTO_UDP:
                continue
            payload = ip[(ip[0] & 0x0F) * 4 + 8 :]
            ports = struct.unpack("!HH", ip[(ip[0] & 0x0F) * 4 : (ip[0] & 0x0F) * 4 + 4])
            if 5060 in ports:
                self.messages.append(payload.decode(errors="replace"))

    def answers_to_bye(self, call_id: str) -> list[int]:
        """The status codes of the answers to BYEs of call_id seen so far (each hop's copy counted once)."""
        found = []
        for text in list(self.messages):
            status = re.match(r"SIP/2\.0 (\d{3}) ", text)
            if status and re.search(r"^CSeq:\s*\d+ BYE", text, re.M | re.I) and call_id in text:
                found.append(int(status.group(1)))
        return sorted(set(found))

    def close(self) -> None:
        """Stop reading and close the socket."""
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def __enter__(self) -> SipOnTheLan:
        """Reading from now on."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Closed on the way out, whatever happened."""
        self.close()


def phone(ep: SipEndpoint, user: str) -> Phone:
    """A desk phone using the shared address as registrar and outbound proxy."""
    uri = f"sip:{VIP}:5060"
    return ep.phone(user, PASSWORDS[user], domain=CLOUD_HOST, registrar=uri, proxy=uri + ";lr", host=PHONES)


def audio_both_ways(ep: SipEndpoint, a: PhoneCall, b: PhoneCall, what: str) -> None:
    """Wait for more RTP to arrive at both phones (a tone plays at each end)."""
    ra, rb = a.rtp_packets()[0], b.rtp_packets()[0]
    ep.wait_for(lambda: a.rtp_packets()[0] > ra + 25 and b.rtp_packets()[0] > rb + 25, 10, what)


def call_through_a_then_fail_over(ep: SipEndpoint, lab: PairLab, one_key: bool = True) -> tuple[PhoneCall, PhoneCall]:
    """Alice calls bob through box A with audio both ways; A dies, B takes the address; audio still flows.

    one_key=False (each box its own pair key): B must take none of A's replication.
    """
    alice, bob = phone(ep, "1001"), phone(ep, "1002")
    assert alice.register() == 200 and bob.register() == 200
    if one_key:
        wait_until(lambda: PHONES in contacts(lab.b, "1002"), "B to learn bob's binding")
    else:
        # A's KDMQ (bob's binding, its pings every 5 s) is signed with A's key: B drops it and says why.
        wait_until(lambda: lab.b.logged("unsigned by the pair key dropped"), "B to drop A's KDMQ", 15, 0.1)
        assert contacts(lab.b, "1002") == ""
    call = alice.call("1002")
    incoming = bob.ringing_call()
    incoming.answer_with(200)
    ep.wait_for(lambda: call.state == "CONFIRMED" and incoming.state == "CONFIRMED", what="the call up through A")
    audio_both_ways(ep, call, incoming, "audio before the failover")
    lab.power_cut("a")
    wait_until(lambda: lab.role(lab.b) == "active", "box B to take the shared address", FAILOVER_S, 0.05)
    audio_both_ways(ep, call, incoming, "audio after the failover (phone to phone)")
    return call, incoming


def test_a_call_set_up_through_a_is_hung_up_through_b_after_a_dies(
    sip_endpoint: SipEndpoint, extensions_csv: Path, workdir: Path
) -> None:
    ep = sip_endpoint
    with running_pair(workdir, extensions_csv, ep, one_key=True) as lab:
        call, incoming = call_through_a_then_fail_over(ep, lab)
        with SipOnTheLan() as lan:
            call.hang_up()
            # B let A's Record-Route through: the BYE reached bob, and his 200 came back to alice.
            ep.wait_for(lambda: incoming.state == "DISCONNECTED", 10, "bob to get the BYE through B")
            ep.wait_for(lambda: bool(lan.answers_to_bye(call.call_id_string)), 10, "the BYE's answer on the LAN")
            assert lan.answers_to_bye(call.call_id_string) == [200]


def test_with_a_key_of_its_own_on_each_box_b_takes_no_binding_from_a_and_refuses_the_hang_up(
    sip_endpoint: SipEndpoint, extensions_csv: Path, workdir: Path
) -> None:
    ep = sip_endpoint
    with running_pair(workdir, extensions_csv, ep, one_key=False) as lab:
        call, incoming = call_through_a_then_fail_over(ep, lab, one_key=False)
        with SipOnTheLan() as lan:
            call.hang_up()
            ep.wait_for(lambda: bool(lan.answers_to_bye(call.call_id_string)), 10, "the BYE's answer on the LAN")
            assert lan.answers_to_bye(call.call_id_string) == [404]  # B does not honour A's Record-Route
            assert incoming.state == "CONFIRMED"  # bob never heard of it: his phone still shows the call


def records_of(box: LifelineProcess, call_id: str) -> list[dict[str, Any]]:
    """The box's call records of call_id, as `lifeline cdr list --json` shows them (daemon up or not)."""
    return [r for r in json.loads(box.cli("cdr", "list", "--json").stdout) if r["call_id"] == call_id]


def folded_up_to(box: LifelineProcess) -> int:
    """The id of the last Kamailio acc event the box folded into its records."""
    with sqlite3.connect(f"file:{box.workdir / 'data' / 'lifeline.db'}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute("SELECT value FROM state WHERE key = 'cdr.acc_cursor'").fetchone()
    return int(json.loads(row[0])) if row else 0


def test_the_call_ended_through_b_has_one_record_closed_by_a_with_the_end_b_saw(
    sip_endpoint: SipEndpoint, extensions_csv: Path, workdir: Path
) -> None:
    ep = sip_endpoint
    with running_pair(workdir, extensions_csv, ep, one_key=True, cdr=QUICK_SWEEP) as lab:
        call, incoming = call_through_a_then_fail_over(ep, lab)
        call_id = call.call_id_string
        before = time.time()
        call.hang_up()
        ep.wait_for(lambda: incoming.state == "DISCONNECTED", 10, "bob to get the BYE through B")
        after = time.time()
        # B folds the BYE (it wrote an acc event for it) and writes the record from the start A's
        # Kamailio copied to it (tests/ha/test_records_failover.py: A may never come back).
        wait_until(lambda: folded_up_to(lab.b) > 0, "B to fold the BYE's acc event", 10, 0.1)
        (b_record,) = records_of(lab.b, call_id)
        # A comes back (standby: nopreempt), folds the INVITE it answered before it died, learns the
        # call's end from B (DMQ's sync at its start) and closes the one record with it.
        lab.start(lab.a)

        def final() -> bool:
            return [r["state"] for r in records_of(lab.a, call_id)] == ["final"]

        wait_until(final, "A's record of the call, final", 20, 0.2)
        (record,) = records_of(lab.a, call_id)
        assert record["disposition"] == "answered"
        assert record["hangup_cause"] == "caller hung up (through the pair's other box)"
        assert before - 0.5 <= record["end_ts"] <= after + 0.5 and record["answer_ts"] < record["end_ts"]
        assert lab.role(lab.a) == "standby" and records_of(lab.b, call_id) == [b_record]
        assert record["id"] == b_record["id"]  # one call, one id: a sink keeps one of the two
