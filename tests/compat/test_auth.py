"""Both compatible APIs obey the daemon token: HTTP Basic for webuiapi, Bearer for openai."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
import webuiapi

from tests.harness import Daemon

TOKEN = "compat-secret-token"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path_factory.mktemp("guarded"), token=TOKEN).start()
    daemon.wait_worker_ready()
    yield daemon
    daemon.stop()


def test_webuiapi_basic_auth_password_is_the_token(guarded: Daemon) -> None:
    api = webuiapi.WebUIApi(baseurl=f"{guarded.url}/sdapi/v1", steps=2)
    with pytest.raises(RuntimeError) as refused:
        api.txt2img(prompt="x", width=64, height=64)
    assert refused.value.args[0] == 401
    api.set_auth("anyone", TOKEN)
    result = api.txt2img(prompt="x", width=64, height=64, seed=3)
    assert result.image.size == (64, 64)
    assert result.info["seed"] == 3
    api.set_auth("anyone", "wrong")
    with pytest.raises(RuntimeError) as wrong:
        api.txt2img(prompt="x", width=64, height=64)
    assert wrong.value.args[0] == 401


def test_openai_api_key_is_the_token(guarded: Daemon) -> None:
    wrong = openai.OpenAI(base_url=f"{guarded.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.images.generate(prompt="x", size="64x64", extra_body={"steps": 2})
    right = openai.OpenAI(base_url=f"{guarded.url}/v1", api_key=TOKEN, max_retries=0)
    response = right.images.generate(
        prompt="x", size="64x64", response_format="url", extra_body={"steps": 2}
    )
    url = response.data[0].url
    assert url is not None and f"token={TOKEN}" in url
    assert httpx.get(url).status_code == 200
    assert httpx.get(url.split("?")[0]).status_code == 401
