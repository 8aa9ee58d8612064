"""Both compatible APIs obey the daemon token: HTTP Basic for webuiapi, Bearer for openai."""

from __future__ import annotations

import json
import urllib.request
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


def test_a1111_routes_challenge_with_basic_as_a1111s_api_auth(guarded: Daemon) -> None:
    """Clients that send credentials only when challenged (urllib's HTTPBasicAuthHandler, a
    browser) got a Bearer challenge they cannot answer; A1111 challenges with Basic."""
    refused = httpx.get(f"{guarded.url}/sdapi/v1/samplers")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic ")
    assert "HTTP Basic password" in refused.json()["detail"]
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, guarded.url, "anyone", TOKEN)
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(passwords))
    with opener.open(f"{guarded.url}/sdapi/v1/samplers", timeout=30) as answer:
        assert "Euler a" in [item["name"] for item in json.load(answer)]
    # The native API keeps its Bearer challenge (a Basic one makes browsers ask for a password
    # whenever the web UI's token is wrong).
    native = httpx.get(f"{guarded.url}/api/v1/queue")
    assert native.headers["www-authenticate"].startswith("Bearer ")


def test_openai_api_key_is_the_token(guarded: Daemon) -> None:
    wrong = openai.OpenAI(base_url=f"{guarded.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        wrong.images.generate(prompt="x", size="64x64", extra_body={"steps": 2})
    assert refused.value.code == "invalid_api_key"  # OpenAI's code for a wrong key
    right = openai.OpenAI(base_url=f"{guarded.url}/v1", api_key=TOKEN, max_retries=0)
    response = right.images.generate(
        prompt="x", size="64x64", response_format="url", extra_body={"steps": 2}
    )
    url = response.data[0].url
    assert url is not None and "sig=" in url
    assert httpx.get(url).status_code == 200
    assert httpx.get(url.split("?")[0]).status_code == 401


def test_an_image_url_opens_that_image_and_nothing_else(guarded: Daemon) -> None:
    """The URL a chat front end shows its users carries a signature for that one image, never
    the token: a token in it would open the whole API (install models, stop the daemon)."""
    right = openai.OpenAI(base_url=f"{guarded.url}/v1", api_key=TOKEN, max_retries=0)
    response = right.images.generate(
        prompt="x", n=2, size="64x64", response_format="url", extra_body={"steps": 2}
    )
    first, second = (item.url or "" for item in response.data)
    assert TOKEN not in first and TOKEN not in second
    assert httpx.get(first).headers["content-type"] == "image/png"
    assert httpx.get(f"{first}&thumb=32").headers["content-type"] == "image/jpeg"
    path, _, query = first.partition("?")
    other_path = second.partition("?")[0]
    # The signature opens neither the other image, nor any other route, nor a forged one.
    assert httpx.get(f"{other_path}?{query}").status_code == 401
    assert httpx.get(f"{guarded.url}/api/v1/queue?{query}").status_code == 401
    assert httpx.get(f"{guarded.url}/sdapi/v1/options?{query}").status_code == 401
    assert httpx.get(f"{path}?sig={'0' * 64}").status_code == 401
    assert httpx.get(f"{path}?{query}&{query}").status_code == 401
