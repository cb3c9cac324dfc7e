"""[ha]'s DMQ in the rendered Kamailio config: nothing of it on a single box, the peer named in pair mode."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from gateway.config import parse
from gateway.sip.dmq import KDMQ_ANSWER_S, PING_INTERVAL_S, REPLICATED_TABLES
from gateway.sip.render import EdgeKeys, RenderInputs, find_module_path, render

PAIR = {
    "enabled": True,
    "peer": "192.0.2.2",
    "virtual_ip": "192.0.2.10/24",
    "key_file": "/etc/lifeline/pair.key",
    "dmq_port": 5091,
}


def rendered(tmp_path: Path, data: dict[str, dict[str, object]]) -> str:
    keys = EdgeKeys(caller="c" * 64, route="d" * 64)
    inputs = RenderInputs(5099, tmp_path / "rpc.sock", tmp_path / "l.db", False, find_module_path(None), None, keys)
    return render(parse(data), inputs)


@pytest.mark.parametrize("data", [{}, {"ha": {"peer": "192.0.2.2", "virtual_ip": "192.0.2.10/24"}}])
def test_a_single_box_has_no_replication(tmp_path: Path, data: dict[str, dict[str, object]]) -> None:
    text = rendered(tmp_path, data)
    assert "dmq" not in text.lower()
    assert "KDMQ" not in text and "HA_DMQ" not in text
    assert "cdr_starts" not in text and "HA_CDR_ANSWER" not in text  # a call's start stays on the box


def test_a_pair_replicates_with_its_peer_only_and_kamailio_takes_the_config(tmp_path: Path) -> None:
    text = rendered(tmp_path, {"sip": {"listen": "192.0.2.1"}, "ha": PAIR})
    assert "listen=tcp:192.0.2.1:5091" in text
    assert 'modparam("dmq", "server_address", "sip:192.0.2.1:5091;transport=tcp")' in text
    assert 'modparam("dmq", "notification_address", "sip:192.0.2.2:5091;transport=tcp")' in text
    assert 'modparam("dmq_usrloc", "enable", 1)' in text and 'modparam("dmq_usrloc", "sync", 1)' in text
    # The settled resync's delay is reckoned from these two (route[HA_SETTLE]): they are what Kamailio runs.
    assert f'modparam("dmq", "ping_interval", {PING_INTERVAL_S})' in text
    assert f'modparam("tm", "fr_timer", {KDMQ_ANSWER_S * 1000})' in text
    for table in (*REPLICATED_TABLES, "cdr_starts"):
        assert re.search(rf'"{table}=>[^"]*dmqreplicate=1;"', text), table
    # An answered call's start is noted for the peer where its 2xx is recorded (gateway/sip/call_starts.py).
    answer = text.split("onreply_route[CDR_REPLY] {", 1)[1].split("\n}\n", 1)[0]
    assert answer.index("route(CDR_WRITE);") < answer.index("route(HA_CDR_ANSWER);")
    # Only the peer's KDMQ, on the DMQ socket, reaches dmq_handle_message; it is checked before anything else.
    gate = text.split("route[HA_DMQ] {", 1)[1].split("\n}\n", 1)[0]
    assert '$si == "192.0.2.2"' in gate and '$Ri == "192.0.2.1" && $Rp == 5091' in gate
    assert text.split("request_route {\n", 1)[1].startswith("\troute(HA_DMQ);\n")
    path = tmp_path / "kamailio.cfg"
    path.write_text(text)
    check = subprocess.run(["kamailio", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr[-2000:]
