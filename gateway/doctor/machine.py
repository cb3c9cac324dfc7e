"""The machine's own facts and their checks: clock source, disk space, SD-card wear, the TLS certificate."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from gateway.config import Config
from gateway.doctor.model import Certificate, Check, Disk, Facts, Verdict, Wear
from gateway.sip.tls import OWN_CERT, OWN_DIR

MMC = Path("/sys/block/mmcblk0")
MIB = 1024 * 1024
DISK_FAIL = (100 * MIB, 0.05)  # below either: the store may not take the next call record
DISK_WARN = (500 * MIB, 0.10)
WEAR_WARN, WEAR_FAIL = 8, 10  # JEDEC estimate steps: 8 = up to 80 % of the rated life used
CERT_WARN_DAYS = 30
NTP_FIX = "let the box reach an NTP server (UDP 123; `timedatectl timesync-status`)"
DISK_FIX = (
    "free space there: `journalctl --vacuum-size=20M`, `apt-get clean`, old backups in [backup] directory; "
    "`lifeline cdr purge` drops delivered call records"
)
WEAR_FIX = "replace it soon: `lifeline backup create`, then restore onto a new card or module (endurance-rated)"


def read_disk(path: Path) -> Disk:
    """Free space where the data lives (the nearest existing directory: it may not be made yet)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    return Disk(path, usage.total, usage.free)


def parse_wear(device: str, life_time: str, pre_eol: str | None) -> Wear:
    """The kernel's eMMC `life_time` ("0x01 0x02") and `pre_eol_info` ("0x01"); ValueError if not that."""
    life = tuple(int(value, 16) for value in life_time.split())
    if not life or any(not 0 <= value <= 11 for value in life):
        raise ValueError(f"life_time {life_time.strip()!r}: expected JEDEC estimates 0x00 to 0x0B")
    return Wear(device, life, int(pre_eol, 16) if pre_eol and pre_eol.strip() else None)


def read_wear(block: Path = MMC) -> Wear | None:
    """The eMMC's wear report; None where there is none (SD cards keep theirs to themselves)."""
    life_path = block / "device" / "life_time"
    try:
        life_time = life_path.read_text()
    except OSError:
        return None
    try:
        pre_eol = (block / "device" / "pre_eol_info").read_text()
    except OSError:
        pre_eol = None
    try:
        return parse_wear(block.name, life_time, pre_eol)
    except ValueError:
        return None


def certificate_path(config: Config) -> tuple[Path, bool] | None:
    """The certificate Kamailio serves (and whether it is Lifeline's own); None when TLS is off."""
    if "tls" not in config.sip.transports:
        return None
    if config.sip.tls_certificate is not None:
        return config.sip.tls_certificate, False
    return config.data_dir / OWN_DIR / OWN_CERT, True


def read_certificate(config: Config) -> Certificate | None:
    """The served certificate's validity dates, or why they cannot be read; None when TLS is off."""
    found = certificate_path(config)
    if found is None:
        return None
    path, own = found
    from cryptography import x509  # here, not above: the daemon imports this module, ~10 MiB it rarely needs

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        return Certificate(path, own, error="no such file")
    except OSError as err:
        return Certificate(path, own, error=f"cannot read: {err.strerror}")
    except ValueError as err:
        return Certificate(path, own, error=f"not a PEM certificate: {err}")
    return Certificate(path, own, cert.not_valid_before_utc, cert.not_valid_after_utc)


def clock_check(facts: Facts) -> Check:
    """Where call records get their time: NTP, the mobile network's time, or nothing trusted."""
    source = (((facts.status or {}).get("cdr") or {}).get("clock") or {}).get("source")
    modem_fix = f"{NTP_FIX}, or add a modem whose network sends the time"
    if source == "ntp":
        return Check("clock", Verdict.PASS, "NTP-synchronised system clock")
    if source == "network":
        return Check("clock", Verdict.WARN, "no NTP: call records use the mobile network's time", NTP_FIX)
    if source == "monotonic":
        detail = "no trusted clock now: call records count on from the last good time of this boot"
        return Check("clock", Verdict.WARN, detail, NTP_FIX)
    if source == "unsynced":
        detail = "no trusted time: call records carry an unchecked clock (a Pi has no battery clock)"
        return Check("clock", Verdict.FAIL, detail, modem_fix)
    if facts.clock_synced:
        return Check("clock", Verdict.PASS, "NTP-synchronised system clock (the kernel says)")
    if facts.clock_synced is None:
        return Check("clock", Verdict.SKIP, "the kernel does not say whether NTP synchronised the clock")
    detail = "the system clock is not NTP-synchronised (the kernel says)"
    if facts.config is not None and facts.config.trunk.modems:
        # The daemon would fall back on the modem's network time: worth a word, not a failure.
        return Check("clock", Verdict.WARN, detail + "; the daemon uses the modem's network time", NTP_FIX)
    return Check("clock", Verdict.FAIL, detail, modem_fix)


def _size(count: int) -> str:
    for unit, size in (("GB", 1024**3), ("MB", MIB)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


def disk_check(facts: Facts) -> Check:
    """Room for the store, the call records and the logs."""
    disk = facts.disk
    if disk is None:
        return Check("disk", Verdict.SKIP, f"free space unknown: {facts.disk_error}")
    share = disk.free / disk.total if disk.total else 0.0
    detail = f"{_size(disk.free)} free of {_size(disk.total)} ({share:.0%}) at {disk.path}"
    if disk.free < DISK_FAIL[0] or share < DISK_FAIL[1]:
        return Check("disk", Verdict.FAIL, detail, DISK_FIX)
    if disk.free < DISK_WARN[0] or share < DISK_WARN[1]:
        return Check("disk", Verdict.WARN, detail, DISK_FIX)
    return Check("disk", Verdict.PASS, detail)


def wear_check(facts: Facts) -> Check:
    """The eMMC's own estimate of its used life (an SD card has none to read)."""
    wear = facts.wear
    if wear is None:
        return Check("sd-wear", Verdict.SKIP, f"no wear report ({MMC.name} has no life_time: SD cards give none)")
    level = max(wear.life)
    if level == 0:
        return Check("sd-wear", Verdict.SKIP, f"{wear.device}: gives no estimate")
    used = f"up to {level * 10} % of its rated life used" if level <= WEAR_FAIL else "beyond its rated life"
    eol = {2: "; reserve blocks 80 % used", 3: "; reserve blocks nearly gone"}.get(wear.pre_eol or 1, "")
    detail = f"{wear.device}: {used}{eol}"
    if level >= WEAR_FAIL or wear.pre_eol == 3:
        return Check("sd-wear", Verdict.FAIL, detail, WEAR_FIX)
    if level >= WEAR_WARN or wear.pre_eol == 2:
        return Check("sd-wear", Verdict.WARN, detail, WEAR_FIX)
    return Check("sd-wear", Verdict.PASS, detail)


def certificate_check(facts: Facts) -> Check:
    """The TLS certificate phones see: present, readable, and valid for a while yet."""
    cert = facts.certificate
    if cert is None:
        return Check("certificate", Verdict.SKIP, 'TLS is off (no "tls" in sip.transports)')
    restart = "`systemctl restart lifeline`"
    if cert.error is not None or cert.not_before is None or cert.not_after is None:
        if cert.own:
            detail = f"{cert.path}: {cert.error}; Lifeline makes its own at the daemon's start"
            return Check("certificate", Verdict.WARN, detail, restart)
        fix = f"put a PEM certificate there, or drop sip.tls_certificate/tls_private_key for Lifeline's own; {restart}"
        return Check("certificate", Verdict.FAIL, f"sip.tls_certificate = '{cert.path}': {cert.error}", fix)
    whose = "Lifeline's own (self-signed)" if cert.own else str(cert.path)
    renew = (
        f"delete {cert.path} and its key, then {restart} (phones that pinned it must trust the new one)"
        if cert.own
        else f"renew it at {cert.path}, then {restart}"
    )
    now = dt.datetime.fromtimestamp(facts.now, dt.UTC)
    until = f"{cert.not_after:%Y-%m-%d}"
    if cert.not_before > now:
        detail = f"{whose}: not valid before {cert.not_before:%Y-%m-%d}"
        return Check("certificate", Verdict.FAIL, detail, "check the clock first (see clock)")
    days = (cert.not_after - now).days
    if cert.not_after <= now:
        return Check("certificate", Verdict.FAIL, f"{whose}: expired on {until}", renew)
    if days < CERT_WARN_DAYS:
        return Check("certificate", Verdict.WARN, f"{whose}: expires on {until}, in {days} day(s)", renew)
    return Check("certificate", Verdict.PASS, f"{whose}: valid until {until} ({days} days)")
