"""Extension records as Lifeline stores them: HA1 digests only, never a clear password."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field


def ha1_md5(user: str, realm: str, password: str) -> str:
    """HA1 = MD5(user:realm:password), as RFC 2617 digest authentication uses it."""
    return hashlib.md5(f"{user}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()


def ha1_sha256(user: str, realm: str, password: str) -> str:
    """HA1 with SHA-256 (RFC 7616)."""
    return hashlib.sha256(f"{user}:{realm}:{password}".encode()).hexdigest()


# Shorter passwords are mirrored all the same, with a warning: the cloud owns the password policy, and a
# mirror that refused a real extension would leave that phone dead in an outage.
SHORT_PASSWORD = 8


def is_short_password(password: str) -> bool:
    """Whether Lifeline warns about this password's length (it is mirrored regardless)."""
    return len(password) < SHORT_PASSWORD


# The limits the CSV and the Lifeline directory API put on these fields (files.py, adapters/lifeline_api.py).
CID_NUMBER = re.compile(r"\+?[0-9]+")
MAX_CID = 32
MAX_LOCATION_ADDRESS = 200


def cid_number(cid: str | None) -> str:
    """The number of a caller ID (`"Front desk" <+4930123456>` or a bare number); "" when it has none."""
    # A vendor's caller ID may be "anonymous", a name only or overlong: dropped, never an error, since
    # refusing the directory over it would stop every password change from reaching the mirror.
    inner = (cid or "").rsplit("<", 1)[-1].rstrip(">").strip()
    return inner if CID_NUMBER.fullmatch(inner) and len(inner) <= MAX_CID else ""


@dataclass(frozen=True)
class Extension:
    """One phone line Lifeline can authenticate and reach."""

    number: str
    auth_user: str
    realm: str
    ha1: str
    ha1_sha256: str
    display_name: str = ""
    groups: tuple[str, ...] = field(default_factory=tuple)
    emergency_cid: str = ""
    source: str = "import"
    # Dispatchable location (RAY BAUM'S Act): what an emergency notification tells the front desk.
    location_address: str = ""
    location_floor: str = ""
    location_room: str = ""

    @classmethod
    def from_password(
        cls,
        *,
        number: str,
        auth_user: str,
        realm: str,
        password: str,
        display_name: str = "",
        groups: tuple[str, ...] = (),
        emergency_cid: str = "",
        source: str = "import",
        location_address: str = "",
        location_floor: str = "",
        location_room: str = "",
    ) -> Extension:
        """Hash the password on arrival; the returned record does not hold it."""
        return cls(
            number=number,
            auth_user=auth_user,
            realm=realm,
            ha1=ha1_md5(auth_user, realm, password),
            ha1_sha256=ha1_sha256(auth_user, realm, password),
            display_name=display_name,
            groups=groups,
            emergency_cid=emergency_cid,
            source=source,
            location_address=location_address,
            location_floor=location_floor,
            location_room=location_room,
        )
