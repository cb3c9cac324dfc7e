"""A status's questions to Kamailio: one in flight for every asker, never cancelled by one who gives up."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from gateway.errors import RpcError
from gateway.sip.shared_answer import SharedAnswer


class SlowKamailio:
    """A question that answers (or fails) only when the test lets it; counts how often it is asked."""

    def __init__(self) -> None:
        self.asked = 0
        self.release = asyncio.Event()
        self.finished = asyncio.Event()
        self.fail = False

    async def ask(self) -> dict[str, int]:
        self.asked += 1
        try:
            await self.release.wait()
            if self.fail:
                raise RpcError("stats.get_statistics: Kamailio did not answer within 3 s")
            return {"users": 2, "contacts": 3}
        finally:
            self.finished.set()


async def test_a_caller_that_gives_up_leaves_the_question_to_the_next_who_shares_it() -> None:
    kamailio = SlowKamailio()
    shared = SharedAnswer(kamailio.ask)
    assert await shared.within(0.01) is None  # Kamailio silent: this status shows the counts as unknown
    later = [asyncio.create_task(shared.within(5)) for _ in range(3)]
    await asyncio.sleep(0)  # the three are waiting on the question the first one started
    kamailio.release.set()
    assert await asyncio.gather(*later) == [{"users": 2, "contacts": 3}] * 3
    assert kamailio.asked == 1, "the first caller's timeout cancelled its question, or each caller asked anew"
    # Answered: the next caller asks again rather than getting an old answer.
    assert await shared.within(5) == {"users": 2, "contacts": 3} and kamailio.asked == 2


async def test_a_failed_question_is_none_for_its_callers_and_reported_nowhere_else() -> None:
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    kamailio = SlowKamailio()
    kamailio.fail = True
    shared = SharedAnswer(kamailio.ask)
    waiting = asyncio.create_task(shared.within(5))
    assert await shared.within(0.01) is None
    kamailio.release.set()
    assert await waiting is None
    # Every caller gone before the error came: it must not surface as "exception never retrieved".
    gone = SlowKamailio()
    gone.fail = True
    assert await SharedAnswer(gone.ask).within(0.01) is None
    gone.release.set()
    await gone.finished.wait()
    await asyncio.sleep(0)  # the task's done callbacks run
    gc.collect()
    assert unhandled == []
