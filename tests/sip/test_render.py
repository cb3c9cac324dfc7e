from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.config import parse
from gateway.sip.render import EdgeKeys, RenderInputs, find_module_path, own_address, render, render_dispatcher


def lab_inputs(tmp_path: Path, survival: bool, cloud_ip: str | None, **options: Any) -> RenderInputs:
    """What render needs besides the config: phones on 5099, files under tmp_path, fixed keys; options by keyword."""
    keys = EdgeKeys(caller="c" * 64, route="d" * 64)
    rpc, db = tmp_path / "rpc.sock", tmp_path / "l.db"
    return RenderInputs(5099, rpc, db, survival, find_module_path(None), cloud_ip, keys, **options)


def rendered(tmp_path: Path, data: dict[str, dict[str, object]], survival: bool, cloud_ip: str | None) -> Path:
    path = tmp_path / "kamailio.cfg"
    path.write_text(render(parse(data), lab_inputs(tmp_path, survival, cloud_ip)))
    return path


@pytest.mark.parametrize(
    ("data", "survival", "cloud_ip"),
    [
        ({}, False, None),
        ({"cloud": {"sbc": "sip:127.0.0.2:5060;transport=tcp", "realm": "pbx.example.com"}}, False, "127.0.0.2"),
        (
            {"cloud": {"sbc": "sip:127.0.0.2"}, "sip": {"auth_algorithm": "SHA-256", "transports": ["udp"]}},
            True,
            "127.0.0.2",
        ),
        ({"cloud": {"sbc": "sip:127.0.0.2"}, "emergency": {"normal": "trunk"}}, False, "127.0.0.2"),
        ({"cloud": {"sbc": "sip:127.0.0.2"}, "emergency": {"normal": "cloud"}}, False, "127.0.0.2"),
        ({"cloud": {"sbc": "sip:127.0.0.2"}, "mirror": {"learned": True}}, False, "127.0.0.2"),
    ],
)
def test_rendered_config_passes_kamailios_own_check(
    tmp_path: Path, data: dict[str, dict[str, object]], survival: bool, cloud_ip: str | None
) -> None:
    path = rendered(tmp_path, data, survival, cloud_ip)
    check = subprocess.run(["kamailio", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr[-2000:]


def test_mode_and_cloud_reach_the_rendered_config(tmp_path: Path) -> None:
    text = rendered(tmp_path, {"cloud": {"sbc": "sip:127.0.0.2:5070"}}, True, "127.0.0.2").read_text()
    assert 'modparam("pv", "shvset", "survival=i:1")' in text
    assert '#!define CLOUD_URI "sip:127.0.0.2:5070"' in text
    assert "#!define WITH_CLOUD" in text
    alone = rendered(tmp_path, {}, False, None).read_text()
    assert "#!define WITH_CLOUD" not in alone
    assert 'modparam("pv", "shvset", "survival=i:0")' in alone


def test_the_cloud_gets_a_socket_of_its_own_and_kamailio_takes_it(tmp_path: Path) -> None:
    cfg = parse({"cloud": {"sbc": "sip:sbc.example.com:5070;transport=tcp"}, "sip": {"listen": "127.0.0.1"}})
    inputs = lab_inputs(tmp_path, False, "127.0.0.1", cloud_port=5098)
    text = render(cfg, inputs)
    # The name was resolved by the daemon: Kamailio only ever sees the address.
    assert '#!define CLOUD_URI "sip:127.0.0.1:5070;transport=tcp"' in text
    assert "listen=tcp:127.0.0.1:5098" in text and '#!define CLOUD_SOCK "tcp:127.0.0.1:5098"' in text
    assert '#!define PHONE_SOCK "udp:127.0.0.1:5099"' in text
    path = tmp_path / "kamailio.cfg"
    path.write_text(text)
    check = subprocess.run(["kamailio", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr[-2000:]


def test_two_sbcs_render_a_dispatcher_list_in_order_and_kamailio_takes_it(tmp_path: Path) -> None:
    cfg = parse({"cloud": {"sbc": ["sip:sbc-a.example.com:5070", "sip:127.0.0.3"]}, "sip": {"listen": "127.0.0.1"}})
    inputs = lab_inputs(tmp_path, False, "127.0.0.2", cloud_port=5098, standby_ips=("127.0.0.3",))
    # Names replaced by their addresses; the first SBC has the highest priority.
    assert render_dispatcher(cfg, inputs) == "1 sip:127.0.0.2:5070 0 2\n1 sip:127.0.0.3 0 1\n"
    inputs.dispatcher_path.write_text(render_dispatcher(cfg, inputs))
    text = render(cfg, inputs)
    assert "#!define WITH_STANDBY" in text
    # An in-dialog next hop naming the first SBC goes to its address (tests/net/test_cloud_names.py); the
    # second is an address already.
    by_address = text.split("route[CLOUD_BY_ADDRESS] {")[1].split("\n}")[0]
    assert '== "sbc-a.example.com" && $var(cloud_port) == 5070) $du = "sip:127.0.0.2:5070;transport=udp";' in by_address
    assert "127.0.0.3" not in by_address
    path = tmp_path / "kamailio.cfg"
    path.write_text(text)
    check = subprocess.run(["kamailio", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr[-2000:]


def test_only_this_boxs_own_addresses_count_as_shared_with_the_cloud() -> None:
    # route[FROM_CLOUD] then matches the SBC's port too (tests/sip/test_cloud_shared_address.py).
    assert own_address("127.0.0.1")
    assert not own_address("192.0.2.10")  # TEST-NET-1: never an address of this machine
