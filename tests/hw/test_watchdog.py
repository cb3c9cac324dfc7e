"""sd_notify over a real unix datagram socket, and the watchdog interval systemd hands us."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from gateway.hw.heartbeat import power_faults, storage_faults
from gateway.hw.patterns import FaultClass
from gateway.hw.watchdog import SystemdNotifier, watchdog_interval


def test_notifies_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(5)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path)})
        assert notifier.notify("READY=1")
        assert notifier.notify("WATCHDOG=1")
        assert server.recv(100) == b"READY=1"
        assert server.recv(100) == b"WATCHDOG=1"
        notifier.close()


def test_notifies_an_abstract_socket() -> None:
    name = f"lifeline-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(5)
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).notify("STOPPING=1")
        assert server.recv(100) == b"STOPPING=1"


def test_without_systemd_it_is_a_quiet_no_op_and_a_gone_socket_does_not_raise(tmp_path: Path) -> None:
    assert SystemdNotifier({}).notify("READY=1") is False
    assert SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).notify("READY=1") is False
    with pytest.raises(ValueError, match="NOTIFY_SOCKET must be an absolute path or start with @, not 'rel'"):
        SystemdNotifier({"NOTIFY_SOCKET": "rel"})


def test_watchdog_interval_is_half_of_watchdog_sec_and_only_for_us() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, pid=42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "43"}, pid=42) is None
    with pytest.raises(ValueError, match="WATCHDOG_USEC must be a positive number of microseconds, not '0'"):
        watchdog_interval({"WATCHDOG_USEC": "0"})


def test_under_voltage_from_the_pi_firmware_is_a_power_fault(tmp_path: Path) -> None:
    flags = tmp_path / "get_throttled"
    flags.write_text("0x50005\n")  # under-voltage now, throttled now, and both since boot
    assert power_faults(flags) == {FaultClass.POWER}
    flags.write_text("0x50000\n")  # only in the past
    assert power_faults(flags) == frozenset()
    assert power_faults(tmp_path / "absent") == frozenset()


def test_hat_model_holds_only_on_fresh_rising_kicks_while_enabled() -> None:
    from gateway.hw.hatsim import RelayStageModel

    hat = RelayStageModel(hold_s=1.0)
    hat.pin_changed("kick", True, 0.0)
    assert not hat.energised(0.1)  # kicks without enable do nothing
    hat.pin_changed("enable", True, 0.2)  # CLR rising while B is high triggers
    assert hat.energised(0.3) and not hat.energised(1.3)
    hat.pin_changed("kick", False, 1.4)  # a falling edge does not retrigger
    assert not hat.energised(1.5)
    hat.pin_changed("kick", True, 1.6)
    assert hat.energised(2.5)
    hat.pin_changed("enable", False, 2.55)  # CLR low: off at once
    assert not hat.energised(2.56)


def test_storage_fault_when_the_data_dir_is_nearly_full_or_missing(tmp_path: Path) -> None:
    assert storage_faults(tmp_path) == frozenset()
    assert storage_faults(tmp_path, min_free_bytes=2**62) == {FaultClass.STORAGE}  # more than any disk holds
    assert storage_faults(tmp_path / "absent") == {FaultClass.STORAGE}
