"""The request-body idle timeout, on aiohttp's own StreamReader: a client that stops sending
is cut off; a body the daemon is slow to read is not."""

import asyncio

import pytest
from aiohttp import StreamReader

from gitd.errors import RequestTimeout
from gitd.http.body_watch import BodyWatch


class _Protocol:
    """What StreamReader asks of the connection that feeds it."""

    connected = True

    def pause_reading(self, **kwargs: object) -> None:
        pass

    def resume_reading(self, **kwargs: object) -> None:
        pass


def test_a_client_that_stops_sending_is_timed_out():
    async def go() -> None:
        payload = StreamReader(_Protocol(), 2**16, loop=asyncio.get_running_loop())
        watch = BodyWatch(payload, 0.2)
        payload.feed_data(b"first")
        assert await payload.read(5) == b"first"
        for _ in range(4):  # bytes keep coming: no timeout however long it takes in all
            await asyncio.sleep(0.1)
            payload.feed_data(b"x")
            await payload.readany()
        with pytest.raises(RequestTimeout, match=r"nothing arrived for 0\.2 seconds"):
            await asyncio.wait_for(payload.readany(), 2)
        assert watch.fired

    asyncio.run(go())


def test_a_body_the_daemon_is_slow_to_read_is_not_timed_out():
    async def go() -> None:
        payload = StreamReader(_Protocol(), 2**16, loop=asyncio.get_running_loop())
        watch = BodyWatch(payload, 0.1)
        payload.feed_data(b"waiting in the buffer")
        await asyncio.sleep(0.5)  # the handler is busy elsewhere; the client cannot send more
        assert not watch.fired and payload.exception() is None
        assert await payload.readany() == b"waiting in the buffer"
        payload.feed_eof()
        await asyncio.sleep(0.3)  # all in: nothing to time out
        assert not watch.fired
        watch.stop()

    asyncio.run(go())
