"""pj objects' C++ side: which ones call into the library when destroyed, destroying them now, pj.Error translated."""

from __future__ import annotations

from typing import Any

import pjsua2 as pj

from gateway.errors import UserAgentError

# pj classes whose C++ destructor calls into the library (conference or call table); plain AudioMedia
# copies, CallInfo and the like free memory only and may go whenever.
_PORT_TYPES = (pj.AudioMediaPort, pj.ToneGenerator, pj.AudioMediaPlayer, pj.AudioMediaRecorder)


def translate(what: str, err: Any) -> UserAgentError:
    """A pj.Error as a UserAgentError naming the operation."""
    return UserAgentError(f"{what}: {err.reason} (pjsua2 status {err.status})")


def _owned(obj: Any) -> bool:
    this = getattr(obj, "this", None)
    return bool(this is not None and this.own())


def _delete(obj: Any) -> None:
    """Run the C++ destructor now (SWIG disowns the proxy, which stays behind inert)."""
    if _owned(obj):
        type(obj).__swig_destroy__(obj)
