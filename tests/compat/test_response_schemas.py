"""The API document types the compatible routes' answers with A1111's and OpenAI's models, and a
live answer of each route holds to that type: a generated client or a schema-driven tester reads
the same shape that webuiapi and the openai package read."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.documented import answer_schema, schema_errors
from tests.harness import Daemon

ADAPTERS = Path(__file__).resolve().parents[2] / "models" / "tiny" / "adapters"
STYLES = '[cinematic]\nprompt = "cinematic still of {prompt}"\nnegative_prompt = "cartoon"\n'
FAST = {"steps": "2", "size": "64x64"}

# Each typed model's fields, in order: A1111's modules/api/models.py (LoraItem: its built-in
# Lora extension's /loras items) and OpenAI's API document (ImagesResponse, Image, Model).
FIELDS: dict[str, tuple[str, ...]] = {
    "SamplerItem": ("name", "aliases", "options"),
    "SchedulerItem": ("name", "label", "aliases", "default_rho", "need_inner_model"),
    "SDModelItem": ("title", "model_name", "hash", "sha256", "filename", "config"),
    "SDVaeItem": ("model_name", "filename"),
    "LoraItem": ("name", "alias", "path", "metadata"),
    "HypernetworkItem": ("name", "path"),
    "FaceRestorerItem": ("name", "cmd_dir"),
    "RealesrganItem": ("name", "path", "scale"),
    "PromptStyleItem": ("name", "prompt", "negative_prompt"),
    "LatentUpscalerModeItem": ("name",),
    "ExtensionItem": (
        "name",
        "remote",
        "branch",
        "commit_hash",
        "version",
        "commit_date",
        "enabled",
    ),
    "EmbeddingItem": ("step", "sd_checkpoint", "sd_checkpoint_name", "shape", "vectors"),
    "EmbeddingsResponse": ("loaded", "skipped"),
    "MemoryResponse": ("ram", "cuda"),
    "ScriptsList": ("txt2img", "img2img"),
    "ScriptArg": ("label", "value", "minimum", "maximum", "step", "choices"),
    "ScriptInfo": ("name", "is_alwayson", "is_img2img", "args"),
    "ImagesResponse": ("created", "data", "output_format", "size"),
    "Image": ("b64_json", "url"),
    "ListModelsResponse": ("object", "data"),
    "Model": ("id", "object", "created", "owned_by"),
}
# Left out of the JSON when absent, as OpenAI leaves them: an image's two fields, and the
# answer's size where it is not one of the three OpenAI's document allows.
OPTIONAL = {"Image": {"b64_json", "url"}, "ImagesResponse": {"size"}}

# (method, path, the 200 answer's model, whether it is a list of them, the request's extras).
ROUTES: list[tuple[str, str, str, bool, dict[str, Any]]] = [
    ("GET", "/sdapi/v1/samplers", "SamplerItem", True, {}),
    ("GET", "/sdapi/v1/schedulers", "SchedulerItem", True, {}),
    ("GET", "/sdapi/v1/sd-models", "SDModelItem", True, {}),
    ("GET", "/sdapi/v1/sd-vae", "SDVaeItem", True, {}),
    ("GET", "/sdapi/v1/loras", "LoraItem", True, {}),
    ("GET", "/sdapi/v1/hypernetworks", "HypernetworkItem", True, {}),
    ("GET", "/sdapi/v1/face-restorers", "FaceRestorerItem", True, {}),
    ("GET", "/sdapi/v1/realesrgan-models", "RealesrganItem", True, {}),
    ("GET", "/sdapi/v1/prompt-styles", "PromptStyleItem", True, {}),
    ("GET", "/sdapi/v1/latent-upscale-modes", "LatentUpscalerModeItem", True, {}),
    ("GET", "/sdapi/v1/extensions", "ExtensionItem", True, {}),
    ("GET", "/sdapi/v1/embeddings", "EmbeddingsResponse", False, {}),
    ("GET", "/sdapi/v1/memory", "MemoryResponse", False, {}),
    ("GET", "/sdapi/v1/scripts", "ScriptsList", False, {}),
    ("GET", "/sdapi/v1/script-info", "ScriptInfo", True, {}),
    ("GET", "/v1/models", "ListModelsResponse", False, {}),
    ("POST", "/v1/images/generations", "ImagesResponse", False, {"json": {"prompt": "a kite"}}),
    ("POST", "/v1/images/edits", "ImagesResponse", False, {"data": {"prompt": "a kite"}}),
    ("POST", "/v1/images/variations", "ImagesResponse", False, {"data": {"n": "2"}}),
]
# Impasto has none of these: the document types them, a live answer is an empty list.
EMPTY = {"/sdapi/v1/hypernetworks", "/sdapi/v1/face-restorers", "/sdapi/v1/realesrgan-models"}
EMPTY |= {"/sdapi/v1/extensions"}
ROUTE_IDS = [f"{method} {path}" for method, path, *_ in ROUTES]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("compat-schemas")
    models = root / "models"
    shutil.copytree(ADAPTERS, models)
    # An unreadable embedding, so that `skipped` holds an item too.
    (models / "embeddings" / "broken.safetensors").write_bytes(b"not a safetensors file")
    running = Daemon(root, models_dir=str(models))
    running.data_dir.mkdir(parents=True)
    (running.data_dir / "styles.toml").write_text(STYLES)
    running.start().wait_worker_ready()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(daemon: Daemon) -> Iterator[httpx.Client]:
    with daemon.client() as client:
        client.timeout = httpx.Timeout(120.0)
        yield client


@pytest.fixture(scope="module")
def document(http: httpx.Client) -> dict[str, Any]:
    answer = http.get("/schema/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


def _component(document: dict[str, Any], ref: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The name and schema a ``{"$ref": "#/components/schemas/Name"}`` points to."""
    assert set(ref) == {"$ref"}, f"not a named type: {ref}"
    name = ref["$ref"].removeprefix("#/components/schemas/")
    return name, document["components"]["schemas"][name]


def _png(transparent_corner: bool) -> bytes:
    image = Image.new("RGBA", (64, 64), (200, 30, 30, 255))
    if transparent_corner:
        image.paste((0, 0, 0, 0), (0, 0, 16, 16))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _call(http: httpx.Client, method: str, path: str, extras: dict[str, Any]) -> httpx.Response:
    if "json" in extras:
        return http.post(path, json={**extras["json"], "size": "64x64", "steps": 2})
    if "data" in extras:
        image = _png(transparent_corner=path.endswith("edits"))
        files = {"image": ("in.png", image, "image/png")}
        return http.post(path, data={**extras["data"], **FAST}, files=files)
    return http.request(method, path)


@pytest.mark.parametrize(("method", "path", "model", "is_list", "extras"), ROUTES, ids=ROUTE_IDS)
def test_the_document_names_each_compat_answers_model(
    document: dict[str, Any], method: str, path: str, model: str, is_list: bool, extras: Any
) -> None:
    schema = answer_schema(document, path, method)
    del schema["components"]  # the answer's own schema: a reference to a named type
    if is_list:
        assert schema.get("type") == "array", schema
        schema = schema["items"]
    name, _ = _component(document, schema)
    assert name == model


@pytest.mark.parametrize("model", sorted(FIELDS))
def test_each_compat_model_has_the_upstream_fields(document: dict[str, Any], model: str) -> None:
    schema = document["components"]["schemas"][model]
    assert schema["type"] == "object"
    # In the upstream model's order, which is the order of the JSON's keys.
    assert list(schema["properties"]) == list(FIELDS[model])
    required = set(FIELDS[model]) - OPTIONAL.get(model, set())
    assert set(schema.get("required", [])) == required
    # Typed: every field has a JSON type or a model, except A1111's ScriptArg value (Any).
    untyped = [field for field, spec in schema["properties"].items() if not spec]
    assert untyped == (["value"] if model == "ScriptArg" else [])


def test_nested_models_are_named_too(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["EmbeddingsResponse"]["properties"]["loaded"]["additionalProperties"] == {
        "$ref": "#/components/schemas/EmbeddingItem"
    }
    nested = [
        ("ScriptInfo", "args", "ScriptArg"),
        ("ImagesResponse", "data", "Image"),
        ("ListModelsResponse", "data", "Model"),
    ]
    for parent, field, child in nested:
        items = schemas[parent]["properties"][field]["items"]
        assert _component(document, items)[0] == child
    assert schemas["Model"]["properties"]["object"]["const"] == "model"
    assert schemas["ListModelsResponse"]["properties"]["object"]["const"] == "list"


@pytest.mark.parametrize(("method", "path", "model", "is_list", "extras"), ROUTES, ids=ROUTE_IDS)
def test_a_live_answer_holds_to_the_document(
    document: dict[str, Any],
    http: httpx.Client,
    method: str,
    path: str,
    model: str,
    is_list: bool,
    extras: dict[str, Any],
) -> None:
    answer = _call(http, method, path, extras)
    assert answer.status_code == 200, answer.text[:300]
    body = answer.json()
    if path in EMPTY:
        assert body == []
    else:
        assert body, "expected installed things to list"
    assert schema_errors(answer_schema(document, path, method), body) == []


def test_images_answer_one_of_url_and_b64_json(http: httpx.Client) -> None:
    """The Image model's fields are optional: each answer holds the one asked for only."""
    for response_format in ("url", "b64_json"):
        body = {"prompt": "a kite", "size": "64x64", "steps": 2, "n": 2}
        answer = http.post(
            "/v1/images/generations", json={**body, "response_format": response_format}
        )
        assert answer.status_code == 200, answer.text[:300]
        assert [list(item) for item in answer.json()["data"]] == [[response_format]] * 2
