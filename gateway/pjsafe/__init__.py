"""pjsua2 used safely: the one place that knows the library's lifecycle rules (trunk agent and lab phones).

pjproject 2.15 aborts the process (PJ_ASSERT) or touches freed memory when its objects outlive their
moment; these rules, read from pjsua2's call.cpp, media.cpp and endpoint.cpp, are enforced in this package
so no caller has to remember them:

1. One thread owns the library: it creates it, pumps it (no pjsua2 worker threads, mainThreadOnly, so
   every SIP callback runs inside `pump` on that thread) and creates and destroys every pj object.
   Another thread gets UserAgentError.
2. A call's id is valid only until DISCONNECTED has been delivered: pjsua then frees the slot and gives
   the id to the next call, and after libDestroy every id is out of range (pjsua_call_set_user_data
   asserts). A SafeCall checks it is live before every operation (CallGoneError otherwise) and deletes
   its C++ Call inside the DISCONNECTED callback, the one moment pjsua2 allows it, or right after the
   operation that caused it returns: its destructor never detaches or hangs up an id that is no longer its.
3. pjsua2 deletes a call, account or media port whose Python proxy is collected, on whichever thread
   the collector runs (pjsua2's clock thread, a simulator's thread): the UserAgent holds each until it
   destroys it itself. Account ids are reused like call ids, so an account's C++ object goes right
   after pjsua_acc_del: a later ~Account would delete whichever account has its id by then.
4. Media ports (AudioMediaPort subclasses, tone generators, recorders, players) leave the conference
   bridge before libDestroy: their destructors after it assert in pjmedia_conf_remove_port.
5. close() in order: hang up every call (pjsua delivers DISCONNECTED at once), pump so BYEs and CANCELs
   leave, destroy adopted ports, destroy calls that never started, shut accounts and transports down,
   gc.collect() (cyclic garbage holding pj objects is finalized now, on this thread, with the library
   up), destroy any pj object Python still owns (a failed test's frame, say), then libDestroy. Only
   inert proxies remain. An endpoint nobody closed is closed at exit.
6. pj.Error becomes UserAgentError; ids pjsua would assert on are never passed to it.

endpoint holds UserAgent, call SafeCall, account UaAccount, native the destroy-now and translate helpers.
"""

from gateway.pjsafe.account import UaAccount
from gateway.pjsafe.call import SafeCall
from gateway.pjsafe.endpoint import UserAgent
from gateway.pjsafe.native import translate

__all__ = ["SafeCall", "UaAccount", "UserAgent", "translate"]
