"""The drill's test calls, in a child process: pjsua2 must not run in the daemon's event loop.

`python -m gateway.drill.ua` reads one JSON line on stdin — where Lifeline listens, the test
extensions with their HA1 digests (never argv, never logged), the calls to place — and writes one
JSON event per line on its standard output: registered, call (one per test call), done. Everything
else (pjsua2's and structlog's lines) goes to stderr. The callee registers; the caller calls it and
the numbers given; on an extension call each side plays its tone and listens for the other's.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

import pjsua2 as pj

from gateway.errors import UserAgentError
from gateway.pjsafe import SafeCall, UaAccount, UserAgent
from gateway.trunk.bridge import audio_format
from gateway.trunk.tones import Tone, dominant

CLOCK_RATE = 8000
PTIME_MS = 20
SETTLE_S = 0.3  # the jitter buffer's first fill: not listened to
BLOCK_MS = 50  # each block of what a side heard gets one verdict
CODECS = ("PCMU/8000/1", "PCMA/8000/1")  # what desk phones speak; a tone passes them unchanged
REGISTER_TIMEOUT_S = 10.0
HANGUP_TIMEOUT_S = 5.0


class ToneCapture(pj.AudioMediaPort):  # type: ignore[misc]
    """Plays one tone into a call and keeps what the call sends back (callbacks on pjsua2's clock thread)."""

    def __init__(self, name: str, tone_hz: int) -> None:
        super().__init__()
        self.tone_hz = tone_hz
        self._samples = CLOCK_RATE * PTIME_MS // 1000
        self._tone = Tone((float(tone_hz),), rate=CLOCK_RATE)
        self._heard: list[bytes] = []
        self._lock = threading.Lock()
        self.createPort(name, audio_format(CLOCK_RATE, PTIME_MS))

    def onFrameRequested(self, frame: Any) -> None:  # noqa: N802 - pjsua2 callback name
        """The next 20 ms of the tone."""
        data = self._tone.read(self._samples)
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = pj.ByteVector(data)
        frame.size = len(data)

    def onFrameReceived(self, frame: Any) -> None:  # noqa: N802
        """Keep 20 ms of what the far end sent."""
        data = bytes(frame.buf)
        with self._lock:
            self._heard.append(data)

    def take(self) -> bytes:
        """What was heard since the last take (and forget it)."""
        with self._lock:
            heard, self._heard = self._heard, []
        return b"".join(heard)


def heard(pcm: bytes, expected_hz: int, other_hz: int) -> dict[str, Any]:
    """Which tone the audio carried: the one that dominates most 50 ms blocks, ok if it is the expected one."""
    size = CLOCK_RATE * BLOCK_MS // 1000 * 2
    skip = int(SETTLE_S * CLOCK_RATE) * 2
    counts = {expected_hz: 0, other_hz: 0}
    blocks = 0
    for start in range(skip, len(pcm) - size + 1, size):
        blocks += 1
        found = dominant(pcm[start : start + size], (float(expected_hz), float(other_hz)), CLOCK_RATE)
        if found is not None:
            counts[int(found)] += 1
    best = max(counts, key=lambda hz: counts[hz])
    share = counts[best] / blocks if blocks else 0.0
    heard_hz = best if share >= 0.5 else None
    return {"expected_hz": expected_hz, "heard_hz": heard_hz, "share": round(share, 2), "ok": heard_hz == expected_hz}


class DrillCall(SafeCall):
    """A test call: its port joins the call's audio as soon as there is audio."""

    def __init__(self, account: UaAccount, call_id: int = pj.PJSUA_INVALID_ID, port: Any = None) -> None:
        self.port = port
        super().__init__(account, call_id)

    def on_media(self) -> None:
        """Link the tone port both ways (again after a re-INVITE gave the call a new stream)."""
        if self.port is not None and self.has_active_audio() and not self.linked(self.port):
            self.link(self.port)


class DrillAccount(UaAccount):
    """One test extension: registers (the callee) or places calls (the caller)."""

    def __init__(self, ua: UserAgent) -> None:
        super().__init__(ua)
        self.reg_codes: list[int] = []
        self.incoming: list[DrillCall] = []
        self.port: Any = None  # the callee's tone port, given to the call it takes

    def on_registration(self, code: int, reason: str) -> None:
        """Keep the registration's final status."""
        self.reg_codes.append(code)

    def on_incoming_call(self, call_id: int, message: str, source: str) -> None:
        """Take the call and let it ring; the main loop answers it."""
        call = DrillCall(self, call_id, self.port)
        self.incoming.append(call)
        call.answer(180)


class Drill:
    """The user agent, its two test extensions and the calls, driven by polling (no pjsua2 threads)."""

    def __init__(self, spec: dict[str, Any], emit: Callable[..., None]) -> None:
        self.spec = spec
        self.emit = emit
        self.ua = UserAgent("Lifeline drill", log_level=0, clock_rate=CLOCK_RATE, ptime_ms=PTIME_MS)
        self.ua.only_codecs(CODECS)
        self.caller = self._account(spec["caller"])
        self.callee = self._account(spec["callee"]) if spec.get("callee") else None

    def _account(self, who: dict[str, str]) -> DrillAccount:
        spec = self.spec
        tid = self.ua.udp_transport(spec["host"])
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{who['user']}@{spec['domain']}"
        acfg.regConfig.registrarUri = spec["registrar"]
        acfg.regConfig.registerOnAdd = False
        acfg.regConfig.retryIntervalSec = 0
        acfg.sipConfig.proxies.append(spec["proxy"])
        acfg.sipConfig.transportId = tid
        # The extension's digest from the store: no clear password exists anywhere to use instead.
        cred = pj.AuthCredInfo("digest", who["realm"], who["user"], pj.PJSIP_CRED_DATA_DIGEST, who["ha1"])
        if spec.get("algorithm") == "SHA-256":
            cred.algoType = pj.PJSIP_AUTH_ALGORITHM_SHA256
        acfg.sipConfig.authCreds.append(cred)
        acfg.natConfig.sipOutboundUse = 0
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.mediaConfig.transportConfig.boundAddress = spec["host"]
        acfg.mediaConfig.transportConfig.publicAddress = spec["host"]
        account = DrillAccount(self.ua)
        self.ua.add_account(account, acfg)
        return account

    def wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Pump pjsua2 until predicate() holds; False when timeout_s passed first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.ua.pump(20)
            if predicate():
                return True
        return predicate()

    def register_callee(self) -> int:
        """Register the callee; its final status code (0: no answer)."""
        callee = self.callee
        assert callee is not None
        callee.set_registration(True)
        self.wait(lambda: bool(callee.reg_codes), REGISTER_TIMEOUT_S)
        code = callee.reg_codes[-1] if callee.reg_codes else 0
        self.emit("registered", extension=self.spec["callee"]["number"], code=code)
        return code

    def unregister_callee(self) -> None:
        """Take the callee's binding away again (best effort)."""
        callee = self.callee
        if callee is None or not callee.reg_codes or callee.reg_codes[-1] // 100 != 2:
            return
        before = len(callee.reg_codes)
        with contextlib.suppress(UserAgentError):
            callee.set_registration(False)
            self.wait(lambda: len(callee.reg_codes) > before, 2.0)

    def place(self, kind: str, to: str, audio: bool) -> dict[str, Any]:
        """One test call: answered within call_timeout_s, then each side's tone checked (audio), then hung up."""
        timeout_s = float(self.spec["call_timeout_s"])
        result: dict[str, Any] = {"kind": kind, "to": to, "code": None, "reason": "", "answered": False}
        result.update({"call_id": "", "audio": None, "error": None})
        tones = self.spec["tones"]
        callee = self.callee
        port = self.ua.adopt(ToneCapture(f"drill-{kind}", tones["caller"])) if audio else None
        if audio and callee is not None:
            callee.port = self.ua.adopt(ToneCapture("drill-callee", tones["callee"]))
        call = DrillCall(self.caller, port=port)
        try:
            call.make_call(f"sip:{to}@{self.spec['domain']}")
            settled = self.wait(lambda: self._answer(call), timeout_s)
            result["answered"] = call.state == "CONFIRMED"
            if result["answered"] and audio:
                result["audio"] = self._listen(call, port)
            if not settled:
                result["reason"] = f"not answered within {timeout_s:.0f} s"
        except UserAgentError as err:
            result["error"] = str(err)
        finally:
            calls = [call, *(callee.incoming if callee is not None else [])]
            for each in calls:
                each.hangup()  # never raises; nothing to do once it is gone
            self.wait(lambda: all(each.gone for each in calls), HANGUP_TIMEOUT_S)
        info = call.last_info
        result["call_id"] = str(info.callIdString) if info is not None else ""
        if result["answered"]:
            result["code"], result["reason"] = 200, "OK"
        elif call.last_code:
            result["code"], result["reason"] = call.last_code, call.last_reason
        for kept in (port, callee.port if callee is not None else None):
            if kept is not None:
                self.ua.release(kept)
        if callee is not None:
            callee.port = None
            callee.incoming.clear()
        return result

    def _answer(self, call: DrillCall) -> bool:
        """Answer the callee's ringing call at once; True when the caller's call is up or over."""
        for incoming in self.callee.incoming if self.callee is not None else []:
            if incoming.state in ("INCOMING", "EARLY") and not incoming.gone:
                incoming.answer(200)
        return call.gone or call.state == "CONFIRMED"

    def _listen(self, call: DrillCall, port: Any) -> dict[str, Any]:
        """Let both tones flow for listen_s; what each side heard."""
        callee = self.callee
        assert callee is not None and port is not None
        far = callee.incoming[-1] if callee.incoming else None
        linked = self.wait(lambda: call.linked(port) and far is not None and far.linked(callee.port), 5.0)
        tones = self.spec["tones"]
        if not linked:
            nothing = {"heard_hz": None, "share": 0.0, "ok": False}
            return {
                "callee": {"expected_hz": tones["caller"], **nothing},
                "caller": {"expected_hz": tones["callee"], **nothing},
            }
        port.take()
        callee.port.take()
        self.wait(lambda: False, float(self.spec["listen_s"]) + SETTLE_S)
        return {
            "callee": heard(callee.port.take(), tones["caller"], tones["callee"]),
            "caller": heard(port.take(), tones["callee"], tones["caller"]),
        }

    def run(self) -> None:
        """Register the callee if there is one, place every call, report each."""
        registered = self.register_callee() // 100 == 2 if self.callee is not None else False
        for spec in self.spec["calls"]:
            if spec["kind"] == "extension" and not registered:
                result = {"kind": "extension", "to": spec["to"], "code": None, "reason": "", "answered": False}
                result.update({"call_id": "", "audio": None, "error": "the callee could not register"})
            else:
                result = self.place(spec["kind"], spec["to"], bool(spec.get("audio")))
            self.emit("call", **result)
        self.unregister_callee()

    def close(self) -> None:
        """Hang up and destroy the library (gateway.pjsafe's order)."""
        self.ua.close()


def main() -> int:
    """Run the drill's calls from the spec on stdin; events on stdout."""
    # The protocol gets the real stdout; pjsua2's own console lines, written to fd 1, go to stderr.
    out: IO[str] = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def emit(event: str, **data: Any) -> None:
        out.write(json.dumps({"event": event, **data}) + "\n")
        out.flush()

    try:
        spec = json.loads(sys.stdin.readline())
    except ValueError as err:
        emit("error", error=f"bad drill spec: {err}")
        return 2
    drill: Drill | None = None
    try:
        drill = Drill(spec, emit)
        drill.run()
    except Exception as err:  # the daemon gets one clean line; the traceback goes to stderr
        traceback.print_exc()
        emit("error", error=str(err) if isinstance(err, UserAgentError) else f"{type(err).__name__}: {err}")
        return 1
    finally:
        if drill is not None:
            drill.close()
    emit("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
