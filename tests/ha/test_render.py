"""keepalived's config for [ha], and Kamailio's sockets in pair mode: what each box is told to do."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from gateway.config import Config, parse
from gateway.errors import HaError
from gateway.ha.kamailio import virtual_listen
from gateway.ha.render import KeepalivedInputs, check_command, inputs_for, interface_of, render

PAIR = {
    "enabled": True,
    "peer": "192.0.2.2",
    "virtual_ip": "192.0.2.10/24",
    "key_file": "/etc/lifeline/pair.key",
    "router_id": 42,
    "priority": 120,
}


def config(tmp_path: Path, **ha: object) -> Config:
    paths = {"data_dir": str(tmp_path / "data"), "run_dir": str(tmp_path / "run")}
    return parse({"sip": {"listen": "192.0.2.1"}, "ha": {**PAIR, **ha}, "paths": paths})


def inputs(cfg: Config, tmp_path: Path) -> KeepalivedInputs:
    return KeepalivedInputs("eth0", "192.0.2.1", tmp_path / "run" / "keepalived.fifo", check_command(cfg), "root")


def test_keepalived_accepts_the_rendered_config_and_it_says_what_the_pair_needs(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    text = render(cfg, inputs(cfg, tmp_path))
    path = tmp_path / "keepalived.conf"
    path.write_text(text)
    # keepalived's own parser: an option it does not know, or a value out of range, is reported.
    done = subprocess.run(["keepalived", "--config-test", "--use-file", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert re.search(r"unicast_peer \{\s+192\.0\.2\.2\s+\}", text)  # unicast to the peer, no multicast
    assert "unicast_src_ip 192.0.2.1" in text
    assert "192.0.2.10/24 dev eth0" in text and "interface eth0" in text
    assert "virtual_router_id 42" in text and "priority 120" in text
    assert "nopreempt" in text and "state BACKUP" in text  # nopreempt needs BACKUP on both boxes
    assert f"notify_fifo {tmp_path}/run/keepalived.fifo" in text
    assert re.search(r"track_script \{\s+lifeline_check\s+\}", text)
    assert f"--rpc {tmp_path}/run/kamailio-rpc.sock --db {tmp_path}/data/lifeline.db" in text


def test_the_track_script_runs_on_the_plain_interpreter_and_reports_why_it_fails(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    command = list(check_command(cfg))
    # keepalived runs the interpreter by its real path, outside any venv: the check needs nothing else.
    command[0] = str(Path(command[0]).resolve())
    done = subprocess.run(command, capture_output=True, text=True, timeout=10, cwd="/")
    assert done.returncode == 1
    assert "kamailio: cannot reach it" in done.stderr and "store:" in done.stderr


def test_the_interface_defaults_to_the_one_with_sip_listens_address(tmp_path: Path) -> None:
    assert interface_of("127.0.0.1") == "lo"
    with pytest.raises(HaError, match=r"set ha\.interface"):
        interface_of("192.0.2.199")
    assert inputs_for(config(tmp_path, interface="eth7")).interface == "eth7"


def test_a_loopback_listener_or_a_path_keepalived_cannot_carry_is_refused(tmp_path: Path) -> None:
    loopback = parse({"ha": PAIR})  # sip.listen's default, 127.0.0.1: no LAN to share an address on
    with pytest.raises(HaError, match=r"sip\.listen on the LAN"):
        inputs_for(loopback)
    spaced = config(tmp_path / "with space")
    with pytest.raises(HaError, match="cannot carry"):
        render(spaced, inputs(spaced, tmp_path))


def test_kamailio_listens_on_the_shared_address_too_and_every_socket_names_it(tmp_path: Path) -> None:
    own = "listen=udp:192.0.2.1:5060\nlisten=tcp:192.0.2.1:5060\nlisten=udp:192.0.2.1:5070"
    lines = virtual_listen(config(tmp_path), own).splitlines()
    assert lines == [
        "listen=udp:192.0.2.1:5060 advertise 192.0.2.10:5060",
        "listen=udp:192.0.2.10:5060",
        "listen=tcp:192.0.2.1:5060 advertise 192.0.2.10:5060",
        "listen=tcp:192.0.2.10:5060",
        "listen=udp:192.0.2.1:5070 advertise 192.0.2.10:5070",
        "listen=udp:192.0.2.10:5070",
    ]
    assert virtual_listen(config(tmp_path, enabled=False), own) == own  # a single box: unchanged
