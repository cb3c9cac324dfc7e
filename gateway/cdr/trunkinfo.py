"""What the trunk agent tells the call records about a trunk call, as one SIP header.

The agent puts `X-Lifeline-Trunk` on the INVITEs it sends a ring group (inbound) and on the final
answer it gives a phone (outbound); Kamailio's acc writes it into the call's event row beside the
rest, so the details land in the same transaction as the call itself, however the processes race.
The value is a URL-encoded query string (`call=3f2a…&modem=lte0&imei=…`): readable in a SIP trace,
one line, no quoting rules of its own.
"""

from __future__ import annotations

import urllib.parse

HEADER = "X-Lifeline-Trunk"
MAX_LEN = 480  # the acc column is VARCHAR(512)

# Keys the agent sends; the records keep only these (a header is input like any other).
KEYS = (
    "call",  # the agent's id of the trunk call: the legs of one inbound call share it
    "modem",  # the modem's name in the config
    "family",
    "imei",
    "iccid",
    "operator",
    "access",  # radio access technology: GSM, UMTS, LTE, or "analog"
    "number",  # the outside party in E.164
    "emergency",  # "1" when the dial plan saw an emergency number
)


def encode(details: dict[str, str | None]) -> str:
    """The header value for these details (unknown keys and empty values left out)."""
    items = [(key, str(details[key])) for key in KEYS if details.get(key) not in (None, "")]
    value = urllib.parse.urlencode(items, quote_via=urllib.parse.quote)
    if len(value) > MAX_LEN:
        raise ValueError(f"{HEADER} would be {len(value)} characters (at most {MAX_LEN})")
    return value


def decode(value: str) -> dict[str, str]:
    """The details in a header value; ValueError naming the problem if it is not one of ours."""
    if len(value) > MAX_LEN:
        raise ValueError(f"{HEADER} is {len(value)} characters (at most {MAX_LEN})")
    try:
        pairs = urllib.parse.parse_qsl(value.strip(), strict_parsing=True, max_num_fields=len(KEYS))
    except ValueError as err:
        raise ValueError(f"{HEADER} is not key=value&…: {err}") from None
    details = {key: text for key, text in pairs if key in KEYS}
    if not details:
        raise ValueError(f"{HEADER} names none of {', '.join(KEYS)}")
    return details
