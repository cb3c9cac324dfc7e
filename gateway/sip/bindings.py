"""Kamailio's registered contacts (usrloc's `ul.dump`) as plain records: who is registered, from where, until when.

Only what an operator may see is kept: the extension, the contact and where it is reached, the user
agent, the expiry and when usrloc last saved it. Call-IDs, instance ids and the like stay behind.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

# sip:user@host:port;params, host a name, an IPv4 address or a bracketed IPv6 one.
_URI = re.compile(r"^sips?:(?:[^@]*@)?(?P<host>\[[^\]]+\]|[^:;>?]+)(?::(?P<port>\d+))?(?P<params>[^?>]*)")
_TRANSPORT = re.compile(r";transport=([a-z]+)", re.IGNORECASE)
_UNSET = ("", "[not set]", "n/a")
NO_EXPIRY = ("permanent",)


@dataclass(frozen=True)
class Binding:
    """One registered contact of an extension."""

    aor: str  # the extension's number: usrloc keys bindings by it (use_domain 0)
    contact: str
    source: str  # host:port where the phone is reached: the received address when set, else the contact's
    transport: str  # udp, tcp, tls (the contact's transport parameter, else the socket's)
    user_agent: str | None
    expires_s: int | None  # seconds left; None: permanent
    modified: float | None  # when usrloc last saved it (UNIX time)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return None if text in _UNSET else text


def _where(uri: str) -> tuple[str, str | None]:
    """(host:port, transport parameter) of a SIP URI; the default port when it names none."""
    found = _URI.match(uri.strip().strip("<>"))
    if found is None:
        return uri, None
    transport = _TRANSPORT.search(found["params"] or "")
    scheme_tls = uri.lower().startswith("sips:")
    port = found["port"] or ("5061" if scheme_tls else "5060")
    return f"{found['host']}:{port}", (transport[1].lower() if transport else ("tls" if scheme_tls else None))


def _binding(aor: str, contact: dict[str, Any]) -> Binding | None:
    address = _text(contact.get("Address"))
    expires = contact.get("Expires")
    if address is None or str(expires) in ("expired", "deleted"):
        return None
    received = _text(contact.get("Received"))
    source, transport = _where(received or address)
    if transport is None:
        _, transport = _where(address)
    socket = _text(contact.get("Socket")) or ""
    proto = socket.partition(":")[0].lower() if ":" in socket else None
    modified = contact.get("Last-Modified")
    return Binding(
        aor=aor,
        contact=address,
        source=source,
        transport=transport or proto or "udp",
        user_agent=_text(contact.get("User-Agent")),
        expires_s=None if str(expires) in NO_EXPIRY or not isinstance(expires, int) else max(0, expires),
        modified=float(modified) if isinstance(modified, int | float) and modified > 0 else None,
    )


def parse_dump(dump: Any) -> list[Binding]:
    """The live contacts of a `ul.dump` reply, by extension then contact."""
    found: list[Binding] = []
    for domain in (dump or {}).get("Domains") or []:
        for entry in (domain.get("Domain") or {}).get("AoRs") or []:
            info = entry.get("Info") or {}
            aor = str(info.get("AoR") or "")
            for item in info.get("Contacts") or []:
                binding = _binding(aor, item.get("Contact") or {})
                if binding is not None:
                    found.append(binding)
    return sorted(found, key=lambda b: (b.aor, b.contact))
