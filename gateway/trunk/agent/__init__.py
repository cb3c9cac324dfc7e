"""The trunk agent: a pjsua2 user agent registered to Lifeline's Kamailio that carries calls over modems.

Runs in its own process (`python -m gateway.trunk.agent`), supervised by the daemon: a crash in
native code must not take the control plane down. asyncio runs on the main thread and pumps
pjsua2 (no pjsua2 worker threads, so SIP callbacks run on this thread inside the pump); only the
media callbacks run on pjsua2's clock thread, and they only copy bytes (see bridge.py).

Outbound: Kamailio's route[TRUNK] sends an INVITE whose Request-URI user is the dialled number →
dial plan and policy → modem pool → ATD → 183 with the network's ringback and announcements as
early media where the modem family sends them (else 180) → 200, or 486/480/503. Inbound: RING +
caller ID → the ring group is called in parallel through Kamailio, the caller's number in the From
display name and P-Asserted-Identity; the first to answer gets the call (ATA). DTMF both ways, hang-up both ways.

The parts: `model` (the secrets it is given, the minutes ledger, a call and a modem slot), `legs`
(the pjsua2 account and call legs), `plumbing` (one call's two sides: answer, bridge, end),
`routing` (outbound and inbound calls, emergency call backs, transfers), `api` (the daemon's
control socket) and `main` (pjsua2 and the modems set up, the run loop, the command line).
"""
