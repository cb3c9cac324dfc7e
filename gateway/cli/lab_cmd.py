"""`lifeline lab`: a throw-away branch office on this machine that loses its WAN and keeps calling.

Everything it builds (network namespaces, Kamailio, the daemon, the modem simulator, pjsua2 phones,
a temporary directory) goes when it ends: done, failed, Ctrl-C, SIGTERM or a part crashing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_FAILED = 1
EXIT_UNSUPPORTED = 2
EXIT_INTERRUPTED = 130
QUICK_HOLD_DOWN_S, FULL_HOLD_DOWN_S = 2.0, 10.0


class Terminated(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, raised where the main thread is."""


def add_parser(sub: Any) -> None:
    """Register `lifeline lab` on the main parser's subcommands."""
    lab = sub.add_parser("lab", help="the whole story on this machine: WAN cut, failover, calls, failback")
    lab.add_argument("--quick", action="store_true", help=f"the short form CI runs ({QUICK_HOLD_DOWN_S:g} s hold-down)")
    lab.add_argument("--keep", action="store_true", help="leave the lab running after the story until Ctrl-C")
    lab.add_argument(
        "--json", action="store_true", help="the timeline on stderr, and one JSON summary as stdout's last line"
    )
    lab.add_argument(
        "--loopback",
        action="store_true",
        help="127.0.0.0/8 addresses and a frozen cloud instead of network namespaces (the form without root)",
    )
    lab.add_argument("--report", type=Path, default=Path("lifeline-lab.html"), help="where the HTML report goes")


STOP = threading.Event()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    STOP.set()  # for when the exception below lands in a pjsua2 callback, which swallows it
    raise Terminated(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    """Build the lab, tell the story, report, and remove everything."""
    loopback = args.loopback or os.geteuid() != 0  # network namespaces need root
    try:
        from gateway.lab.story import Teller
        from gateway.lab.story_lab import StoryLab
        from gateway.lab.story_model import Story
        from gateway.lab.story_report import write
        from gateway.lab.story_view import View
    except ImportError as err:
        print(f"lifeline lab: {err.name} is missing: pip install -e '.[lab]'", file=sys.stderr)
        return EXIT_UNSUPPORTED
    view = View(to_stderr=args.json)
    story = Story(quick=args.quick, on_change=view.update)
    previous = signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    interrupted, passed = False, False
    lab: StoryLab | None = None
    try:
        hold_down_s = QUICK_HOLD_DOWN_S if args.quick else FULL_HOLD_DOWN_S
        lab = StoryLab(hold_down_s=hold_down_s, log=view.note, loopback=loopback)
        view.note(f"lab: work directory {lab.workdir}; namespaces {' '.join(lab.namespaces) or '(none: loopback)'}")
        with view:
            passed = Teller(lab, story, STOP).run()
            if STOP.is_set():  # the signal landed where it was swallowed, after the last wait
                raise Terminated("stop requested")
            if args.keep and passed:
                _keep(lab, view)
    except KeyboardInterrupt:
        interrupted = True
        story.event("fail", "interrupted")
    except Exception as err:  # a crash of the lab's own code: still torn down and reported
        passed = False
        story.event("fail", f"the lab crashed: {err!r}")
    finally:
        # A second Ctrl-C must not cut the teardown short: every step of it has its own timeout.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if lab is not None:
            lab.close()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    write(args.report, story, interrupted)
    view.summary(story, args.report)
    if args.json:
        print(json.dumps({**story.as_dict(), "interrupted": interrupted}), flush=True)
    if interrupted:
        return EXIT_INTERRUPTED
    return 0 if passed else EXIT_FAILED


def _keep(lab: Any, view: Any) -> None:
    """Wait for Ctrl-C (or SIGTERM) with the lab up, saying how to look at it."""
    a, ns = lab.addr, lab.namespaces
    status = f"{sys.executable} -m gateway --config {lab.branch.lifeline.config_path} status"
    if ns:
        view.note(f"lab kept running: Lifeline SIP {a.branch_lan}:5060 in {ns[1]}, the cloud {a.cloud} in {ns[3]}")
        view.note(f"  its status: ip netns exec {ns[1]} {status}")
    else:
        view.note(f"lab kept running: Lifeline SIP {a.branch_lan}:5060, the cloud {a.cloud} ({lab.where})")
        view.note(f"  its status: {status}")
    view.note("  Ctrl-C removes it all")
    try:
        while True:
            signal.pause()  # until Ctrl-C or SIGTERM raises here
    except KeyboardInterrupt:
        view.note("lab: stopping (asked to)")  # the end --keep waits for: not an interruption of the story
