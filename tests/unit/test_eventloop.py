import asyncio

import pytest

from gitd.config import ConfigError
from gitd.eventloop import loop_factory, run


def test_event_loop_setting_picks_the_loop():
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__.partition(".")[0]

    assert run(which(), loop_factory("asyncio")) == "asyncio"
    assert run(which(), loop_factory("uvloop")) == "uvloop"
    assert run(which(), loop_factory("auto")) == "uvloop"  # installed with gitd
    with pytest.raises(ConfigError, match="event_loop"):
        loop_factory("trio")
