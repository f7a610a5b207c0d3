"""The default engine: a plain asyncio timer that sleeps until the earliest due time it knows."""

from __future__ import annotations

import asyncio
import logging

from cronjob_adapters.engine.base import EngineBase

log = logging.getLogger(__name__)

#: Waits at most this long skip the WorkSignal (see ``run``): at worst, work notified meanwhile
#: starts this much later.
_SHORT_WAIT = 0.005


class AsyncioTimerEngine(EngineBase):
    """Claims due work, then sleeps until the next due time, a signal, or the poll interval.

    The poll interval bounds how late it learns of work created by other processes; the
    WorkSignal makes work created in this process start without waiting for it.
    """

    #: The last tick found due work it could not claim and looked again at once (only once).
    _looked_again = False

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                self._last_tick = self._clock.now()
                try:
                    timeout = await self._tick()
                    backoff = 0.5
                except Exception as exc:  # the store is down or flaky: keep going, slower
                    log.warning("scheduler loop: %s: %s; retrying in %.1f s", type(exc).__name__, exc, backoff)
                    timeout = backoff
                    backoff = min(backoff * 2, self._max_error_backoff)
                await self._collect_if_quiet(timeout)
                if 0 < timeout <= _SHORT_WAIT:
                    # Due again in a moment (work due every few ms): a plain timer costs a
                    # fraction of a cancellable signal wait, and the next look claims whatever is
                    # due by then, notified or not.
                    await asyncio.sleep(timeout)
                elif timeout > 0:
                    waiting = asyncio.create_task(self._signal.wait(timeout))
                    await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    if not waiting.done():
                        waiting.cancel()
                else:
                    await asyncio.sleep(0)  # let running jobs and the API breathe between batches
        finally:
            stopping.cancel()
            await self._dispatcher.drain(self._drain_timeout)

    async def _tick(self) -> float:
        """Claim what is due; return how long to sleep (0 when more may be waiting right now)."""
        self._idle = False
        if await self._dispatcher.dispatch_due():
            self._looked_again = False
            if self._dispatcher.more_may_be_due:
                return 0.0
            # The claim came back short: nothing else was due, so plan the next look right away
            # rather than claim again (with a store round trip) to find nothing.
        look = await self._next_look()
        if look.due_now:
            if not self._looked_again:
                # Most likely it fell due just after the claim looked (work due every few ms):
                # look again at once, but only once.
                self._looked_again = True
                return 0.0
            # Due but lost to another replica's claim a moment ago: look again shortly.
            return min(0.01, self._poll_interval)
        self._looked_again = False
        if look.at is None:
            return self._poll_interval
        # Wake at the due time itself, not up to 10 ms late.
        return min((look.at - self._clock.now()).total_seconds(), self._poll_interval)
