"""The async client's model calls against a real daemon, mirroring the sync ones."""

from __future__ import annotations

import asyncio
import time

from impasto.client import AsyncClient
from tests.harness import Daemon


def test_async_model_calls(daemon: Daemon) -> None:
    async def scenario() -> tuple[list[str], str, int, list[str], list[str]]:
        async with AsyncClient(base_url=daemon.url, token=daemon.token or None) as client:
            ids = [m.id for m in await client.model_details()]
            one = await client.model("sd-tiny-v")
            sent = await client.load_model("sd-tiny-v")
            deadline = time.monotonic() + 60
            loaded: list[str] = []
            while time.monotonic() < deadline and "sd-tiny-v" not in loaded:
                loaded = [m.model for m in await client.loaded_models()]
                await asyncio.sleep(0.1)
            await client.load_model("sd-tiny-v", unload=True)
            after: list[str] = loaded
            while time.monotonic() < deadline and "sd-tiny-v" in after:
                after = [m.model for m in await client.loaded_models()]
                await asyncio.sleep(0.1)
            installs = [i.id for i in await client.installs()]
            assert all(isinstance(i, str) for i in installs)
            return ids, one.family, sent, loaded, after

    ids, family, sent, loaded, after = asyncio.run(scenario())
    assert "sd-tiny" in ids and "sd-tiny-v" in ids
    assert family and sent >= 1
    assert "sd-tiny-v" in loaded and "sd-tiny-v" not in after
