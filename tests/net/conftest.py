"""A branch office in network namespaces (needs root, as CI has): real outages, real phones."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.lab.branch import BranchLab
from gateway.lab.netns import inside
from gateway.lab.phones import Phone, SipEndpoint
from tests.conftest import PASSWORDS

_tags = itertools.count()


@pytest.fixture
def make_branch() -> Iterator[Callable[..., BranchLab]]:
    """Build and start a branch lab with the given health settings; removed after the test."""
    labs: list[BranchLab] = []
    workdirs: list[Path] = []

    def make(
        sections: dict[str, Any] | None = None, regions: int = 1, dns: tuple[str, ...] = (), **health: Any
    ) -> BranchLab:
        tag = f"{os.getpid() % 1000}{next(_tags) % 100}"
        # A short work directory: Kamailio's RPC socket lives in it, and a unix socket's path has room
        # for about 100 bytes (a test worker's tmp_path alone can take most of that).
        workdir = Path(tempfile.mkdtemp(prefix=f"ll{tag}-"))
        workdirs.append(workdir)
        lab = BranchLab(workdir, tag, PASSWORDS, health, sections, regions, dns=dns)
        labs.append(lab)
        lab.start()
        return lab

    yield make
    for lab in labs:
        lab.close()
    for workdir in workdirs:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def in_phones_ns(sip_endpoint: SipEndpoint) -> Iterator[Callable[[BranchLab], None]]:
    """Move this thread into the lab's phone namespace (pjsua2 opens its sockets there)."""
    stack: list[Any] = []

    def enter(lab: BranchLab) -> None:
        context = inside(lab.topology.ns["ph"])
        context.__enter__()
        stack.append(context)

    yield enter
    sip_endpoint.reset()
    while stack:
        stack.pop().__exit__(None, None, None)


def lab_phone(ep: SipEndpoint, lab: BranchLab, user: str) -> Phone:
    """A phone on the branch LAN, registering to the cloud with Lifeline as outbound proxy."""
    return lab.phone(ep, user)


def registered_pair(ep: SipEndpoint, lab: BranchLab) -> tuple[Phone, Phone]:
    """Alice (1001) and Bob (1002) on the branch LAN, registered through Lifeline to the cloud."""
    alice, bob = lab_phone(ep, lab, "1001"), lab_phone(ep, lab, "1002")
    assert alice.register() == 200 and bob.register() == 200
    return alice, bob


@pytest.fixture
def make_phones_branch(
    make_branch: Callable[..., BranchLab], in_phones_ns: Callable[[BranchLab], None]
) -> Callable[..., BranchLab]:
    """Build a branch lab (make_branch's arguments) and move this thread into its phone namespace."""

    def make(*args: Any, **kwargs: Any) -> BranchLab:
        lab = make_branch(*args, **kwargs)
        in_phones_ns(lab)
        return lab

    return make


@pytest.fixture
def make_pair_branch(
    make_phones_branch: Callable[..., BranchLab], sip_endpoint: SipEndpoint
) -> Callable[..., tuple[BranchLab, Phone, Phone]]:
    """Build a branch lab as make_phones_branch does, with Alice and Bob registered through it."""

    def make(*args: Any, **kwargs: Any) -> tuple[BranchLab, Phone, Phone]:
        lab = make_phones_branch(*args, **kwargs)
        alice, bob = registered_pair(sip_endpoint, lab)
        return lab, alice, bob

    return make
