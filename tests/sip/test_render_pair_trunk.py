"""The trunk across the pair in the rendered Kamailio config: absent on a single box, gated in pair mode."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gateway.config import parse
from gateway.sip.render import EdgeKeys, RenderInputs, find_module_path, render

PAIR = {"enabled": True, "peer": "192.0.2.2", "virtual_ip": "192.0.2.10/24", "key_file": "/etc/lifeline/pair.key"}


def rendered(tmp_path: Path, data: dict[str, dict[str, object]], trunk_key: str = "") -> str:
    keys = EdgeKeys(caller="c" * 64, route="d" * 64, pair_trunk=trunk_key)
    inputs = RenderInputs(5099, tmp_path / "rpc.sock", tmp_path / "l.db", True, find_module_path(None), None, keys)
    return render(parse(data), inputs)


def test_a_single_box_routes_the_trunk_as_before(tmp_path: Path) -> None:
    text = rendered(tmp_path, {"trunk": {"extension": "1009"}})
    assert "PAIR_TRUNK" not in text and "X-Lifeline-Pair" not in text and "crypto" not in text
    trunk = text.split("route[TRUNK] {\n", 1)[1].split("\n}\n", 1)[0]
    assert 'if (!lookup("location", "sip:$shv(trunk)@$rd")) {' in trunk


def test_a_pair_sends_trunk_calls_to_the_peer_only_signed_and_takes_them_from_the_peer_only(tmp_path: Path) -> None:
    text = rendered(tmp_path, {"sip": {"listen": "192.0.2.1"}, "ha": PAIR}, trunk_key="e" * 64)
    assert '#!define PAIR_TRUNK_KEY "' + "e" * 64 + '"' in text
    assert '#!define PAIR_PEER_URI "sip:192.0.2.2:5090;transport=tcp"' in text
    assert "if (!route(PAIR_TRUNK_AGENT)) {" in text.split("route[TRUNK] {", 1)[1]
    # The forwarded INVITE is looked at only on the pair's socket, from the peer, over TCP.
    gate = text.split("route[HA_DMQ] {", 1)[1].split("\n}\n", 1)[0]
    assert '$Ri == "192.0.2.1" && $Rp == 5090' in gate
    assert 'if ($proto == "tcp" && $si == "192.0.2.2" && route(PAIR_TRUNK_GATE)) return;' in gate
    assert text.count("route(PAIR_TRUNK_IN)") == 1  # from the gate only
    path = tmp_path / "kamailio.cfg"
    path.write_text(text)
    check = subprocess.run(["kamailio", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr[-2000:]
