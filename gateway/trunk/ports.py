"""Finding a modem's ports by what they are (by-id name, USB VID:PID + interface), never by ttyUSBn."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gateway.trunk.profiles import Profile

BY_ID = Path("/dev/serial/by-id")
SYSFS_USB = Path("/sys/bus/usb/devices")
_IF = re.compile(r"-if(\d{2})(?:-port\d+)?$")


@dataclass(frozen=True)
class ModemPorts:
    """The device nodes of one modem right now (they change when it re-enumerates)."""

    at: str
    audio: str | None
    ident: str  # stable: the by-id stem or the USB path, for logs and the status page


class PortFinder(Protocol):
    """Where a modem's ports are now; None while it is not enumerated."""

    def find(self) -> ModemPorts | None:
        """Look for the modem's ports (blocking file-system work; call off the loop)."""
        ...


class ByIdFinder:
    """Find ports through udev's /dev/serial/by-id links: usb-<vendor>_<model>_<serial>-ifNN-port0."""

    def __init__(self, profile: Profile, match: str = "", directory: Path = BY_ID) -> None:
        self.profile = profile
        self.match = match
        self.directory = directory

    def find(self) -> ModemPorts | None:
        """The AT (and audio) port whose by-id names contain `match`."""
        if not self.directory.is_dir():
            return None
        by_if: dict[int, tuple[str, str]] = {}
        for link in sorted(self.directory.iterdir()):
            found = _IF.search(link.name)
            if found is None or self.match not in link.name:
                continue
            target = link.resolve()
            if not target.exists():
                continue  # a stale link while the device goes away
            by_if[int(found.group(1))] = (str(target), link.name[: found.start()])
        at_port = by_if.get(self.profile.at_interface)
        if at_port is None:
            return None
        audio: str | None = None
        if self.profile.audio_interface is not None:
            audio_port = by_if.get(self.profile.audio_interface)
            if audio_port is None:
                return None  # half-enumerated: wait for both
            audio = audio_port[0]
        return ModemPorts(at_port[0], audio, at_port[1])


class SysfsFinder:
    """Find ports by USB VID:PID and interface number in sysfs (when udev's by-id links are missing)."""

    def __init__(self, profile: Profile, root: Path = SYSFS_USB, dev_dir: Path = Path("/dev")) -> None:
        self.profile = profile
        self.root = root
        self.dev_dir = dev_dir

    def find(self) -> ModemPorts | None:
        """The first USB device with one of the profile's VID:PIDs, and its interfaces' ttys."""
        if not self.root.is_dir():
            return None
        for device in sorted(self.root.iterdir()):
            ids = _read_ids(device)
            if ids is None or ids not in self.profile.usb_ids:
                continue
            at_tty = self._tty(device, self.profile.at_interface)
            audio_tty = None
            if self.profile.audio_interface is not None:
                audio_tty = self._tty(device, self.profile.audio_interface)
                if audio_tty is None:
                    continue
            if at_tty is not None:
                return ModemPorts(at_tty, audio_tty, f"usb-{device.name}")
        return None

    def _tty(self, device: Path, interface: int) -> str | None:
        # Interfaces are <device>:<config>.<n>; their tty children are ttyUSB*/ttyACM* directories.
        for intf in sorted(device.glob(f"{device.name}:*.{interface}")):
            for tty in sorted([*intf.glob("ttyUSB*"), *intf.glob("tty/ttyACM*")]):
                node = self.dev_dir / tty.name
                if node.exists():
                    return str(node)
        return None


def _read_ids(device: Path) -> tuple[int, int] | None:
    try:
        vid = int((device / "idVendor").read_text().strip(), 16)
        pid = int((device / "idProduct").read_text().strip(), 16)
    except (OSError, ValueError):
        return None
    return vid, pid
