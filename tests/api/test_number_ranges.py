"""Every number a request can carry has a finite range: nan, inf and 1e308 never get through.

Checked on the handlers' own declarations, and in the OpenAPI document, which states every
bound (Litestar 2 left out a lower bound of 0; impasto.api.openapi_doc restores it).
"""

from __future__ import annotations

import math
import re
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import msgspec
import pytest
from litestar.params import QueryParameter
from litestar.testing import TestClient

from impasto.api.app import build_litestar
from impasto.services.container import Services
from impasto.wire import FIELD_RULES
from impasto.wire.limits import decode_error
from tests.api.conftest import make_services


def _json_numbers(schema: dict[str, Any], defs: dict[str, Any], where: str) -> list[str]:
    """Paths of number-typed values in a JSON schema that lack a lower or an upper bound."""
    if "$ref" in schema:
        return _json_numbers(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, where)
    found: list[str] = []
    if schema.get("type") == "number":
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if low is None or high is None:
            found.append(where)
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            found += _json_numbers(option, defs, where)
    for name, prop in schema.get("properties", {}).items():
        found += _json_numbers(prop, defs, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        found += _json_numbers(schema["items"], defs, f"{where}[]")
    return found


def _is_float(annotation: Any) -> bool:
    if annotation is float:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_float(a) for a in get_args(annotation))
    return False


def test_every_request_number_has_a_finite_range(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    app = build_litestar(services)
    unbounded: list[str] = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for name, field in handler.parsed_fn_signature.parameters.items():
                where = f"{route.path} {name}"
                if name == "data" and isinstance(field.annotation, type):
                    if issubclass(field.annotation, msgspec.Struct):
                        schema = msgspec.json.schema(field.annotation)
                        unbounded += _json_numbers(schema, schema.get("$defs", {}), where)
                elif _is_float(field.annotation):
                    kwarg = field.kwarg_definition
                    low = getattr(kwarg, "ge", None) if kwarg else None
                    high = getattr(kwarg, "le", None) if kwarg else None
                    if low is None or high is None or not math.isfinite(high - low):
                        unbounded.append(where)
    services.extra["db"].close()
    assert not unbounded, f"numbers without a range (nan/inf/1e308 get through): {unbounded}"


def test_keep_alive_out_of_range_names_the_field_and_range(api: TestClient) -> None:
    for value in ("nan", "inf", "-inf", "1e308", "-1"):
        answer = api.post(f"/api/v1/models/sd-tiny/load?keep_alive={value}")
        assert answer.status_code == 422, answer.text
        error = answer.json()["errors"][0]
        assert error["field"] == "keep_alive"
        assert "between 0 and 604800" in error["message"]


def test_compat_numbers_out_of_range_are_refused(api: TestClient) -> None:
    for field in ("denoising_strength", "subseed_strength", "image_cfg_scale"):
        body = {"prompt": "x", "steps": 1, field: 1e308}
        answer = api.post("/sdapi/v1/img2img", json={**body, "init_images": []})
        assert answer.status_code in (400, 422), answer.text
        assert field in answer.text


def test_every_ranged_query_parameter_states_its_range_in_words(tmp_path: Path) -> None:
    """A ranged query parameter out of range reads "must be ... between", as body fields do."""
    services = make_services(tmp_path)
    app = build_litestar(services)
    ranged: dict[str, str] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for name, field in handler.parsed_fn_signature.parameters.items():
                kwarg = field.kwarg_definition
                if name != "data" and getattr(kwarg, "le", None) is not None:
                    ranged[name] = route.path
    services.extra["db"].close()
    assert {"limit", "thumb", "since", "keep_alive"} <= ranged.keys(), ranged
    unworded = {n: p for n, p in ranged.items() if "between" not in (FIELD_RULES.get(n) or "")}
    assert not unworded, f"query parameters whose 422 would read as msgspec's: {unworded}"


def test_every_length_limited_query_parameter_states_its_limit_in_words(
    api: TestClient, services: Services
) -> None:
    """``?q=`` past its length read as msgspec's "Expected `str` of length <= 1000"."""
    limited: list[tuple[str, str, str, int]] = []
    for route in build_litestar(services).routes:
        for handler in getattr(route, "route_handlers", []):
            for name, field in handler.parsed_fn_signature.parameters.items():
                kwarg = field.kwarg_definition
                most = getattr(kwarg, "max_length", None)
                in_query = isinstance(kwarg, QueryParameter)
                if name != "data" and most is not None and in_query and "{" not in route.path:
                    limited += [(m, route.path, name, most) for m in handler.http_methods]
    assert ("GET", "/api/v1/history", "q", 1000) in limited, limited
    for method, path, name, most in limited:
        answer = api.request(method, path, params={name: "a" * (most + 1)})
        assert answer.status_code == 422, (method, path, answer.text)
        rule = f"must be text of at most {most} characters"
        assert answer.json()["errors"] == [{"field": name, "message": rule}], (method, path)


@pytest.mark.parametrize(
    ("words", "rule"),
    [
        ("Expected `str` of length <= 1000", "must be text of at most 1000 characters"),
        ("Expected `str` of length >= 2", "must be text of at least 2 characters"),
        ("Expected `array` of length <= 64", "must be a list of at most 64 items"),
        ("Expected `int` >= 1", "must be an integer of at least 1"),
        ("Expected `float` < 2.5", "must be a number below 2.5"),
        ("Expected `int` that is a multiple of 8", "must be a multiple of 8"),
        ("Expected `object`, got `array`", "Expected `object`, got `array`"),
    ],
)
def test_msgspec_constraint_words_read_as_rules(words: str, rule: str) -> None:
    assert decode_error(f"{words} - at `$.x`", "x") == ("x", rule)


def test_a_thumbnail_size_out_of_range_names_its_range(api: TestClient) -> None:
    answer = api.get("/api/v1/images/00000000-0000-0000-0000-000000000000/0?thumb=99999")
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"] == [
        {"field": "thumb", "message": "must be an integer between 16 and 1024"}
    ]


def _documented_without_a_lower_bound(node: Any, where: str) -> list[str]:
    """Places in the OpenAPI document with a ``maximum`` and no lower bound."""
    if isinstance(node, list):
        return [
            m
            for i, item in enumerate(node)
            for m in _documented_without_a_lower_bound(item, f"{where}[{i}]")
        ]
    if not isinstance(node, dict):
        return []
    found = []
    if "maximum" in node and "minimum" not in node and "exclusiveMinimum" not in node:
        found.append(where)
    for key, value in node.items():
        found += _documented_without_a_lower_bound(value, f"{where}/{key}")
    return found


def test_the_openapi_document_states_both_bounds_of_every_number(api: TestClient) -> None:
    document = api.get("/schema/openapi.json").json()
    assert not _documented_without_a_lower_bound(document, "")
    cfg = document["components"]["schemas"]["GenerateRequest"]["properties"]["cfg_scale"]
    assert (cfg["minimum"], cfg["maximum"]) == (0, 30)
    load = document["paths"]["/api/v1/models/{model_id}/load"]["post"]["parameters"]
    keep_alive = next(p["schema"] for p in load if p["name"] == "keep_alive")
    assert (keep_alive["minimum"], keep_alive["maximum"]) == (0, 604800)


def test_every_flag_query_parameter_says_true_or_false(api: TestClient, services: Services) -> None:
    """A flag (``?force=``, ``?running=``, A1111's ``?skip_current_image=``) given another
    word names itself and its two values, not msgspec's "Expected `bool`"."""
    flags: list[tuple[str, str, str]] = []
    for route in build_litestar(services).routes:
        for handler in getattr(route, "route_handlers", []):
            for name, field in handler.parsed_fn_signature.parameters.items():
                if name != "data" and field.annotation is bool:
                    path = re.sub(r"\{(\w+):\w+\}", "x", route.path)
                    flags += [(method, path, name) for method in handler.http_methods]
    assert {"force", "running", "skip_current_image"} <= {name for _, _, name in flags}, flags
    for method, path, name in flags:
        answer = api.request(method, path, params={name: "maybe"})
        assert answer.status_code == 422, (method, path, answer.text)
        errors = answer.json()["detail" if path.startswith("/sdapi") else "errors"]
        if path.startswith("/sdapi"):  # FastAPI's shape
            errors = [{"field": e["loc"][-1], "message": e["msg"]} for e in errors]
        assert errors == [{"field": name, "message": "must be true or false"}], (method, path)
