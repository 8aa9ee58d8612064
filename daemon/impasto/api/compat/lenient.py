"""Request bodies read as leniently as pydantic v1 reads them for AUTOMATIC1111.

A1111's request models are pydantic v1 models, which coerce: ``false`` in an integer field is 0,
``3.7`` is 3, ``"12"`` is 12, ``"yes"`` is true, a number in a text field is its text. Its clients
rely on that, so one step driven by the schema's field types applies those coercions before
msgspec converts (itself in lax mode, which reads numbers and booleans from strings). The
schema's limits still apply afterwards, and an error names the field.
"""

from __future__ import annotations

import math
import re
from typing import Any, TypeVar

import msgspec
from litestar.enums import RequestEncodingType
from litestar.params import Body
from msgspec import inspect

from impasto.api.compat.errors import CompatError
from impasto.wire import REQUIRED, decode_error

T = TypeVar("T")

_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _single(info: inspect.Type) -> inspect.Type:
    """The one type a field holds: Optional and constraints taken off (unions stay unions)."""
    if isinstance(info, inspect.UnionType):
        kinds = [t for t in info.types if not isinstance(t, inspect.NoneType)]
        info = kinds[0] if len(kinds) == 1 else info
    return info.type if isinstance(info, inspect.Metadata) else info


def _coerce(value: Any, info: inspect.Type) -> Any:
    """``value`` as pydantic v1 would have turned it into ``info``'s type, else unchanged."""
    kind = _single(info)
    if value is None:
        return value
    if isinstance(kind, inspect.IntType):
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and math.isfinite(value):
            return int(value)  # pydantic v1 truncates
    elif isinstance(kind, inspect.FloatType):
        if isinstance(value, bool):
            return float(value)
    elif isinstance(kind, inspect.LiteralType) and all(
        type(choice) is int for choice in kind.values
    ):
        # pydantic v1 looks a Literal up by equality: true is 1, 1.0 is 1.
        if isinstance(value, bool) or (isinstance(value, float) and value.is_integer()):
            return int(value)
    elif isinstance(kind, inspect.BoolType):
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
    elif isinstance(kind, inspect.StrType):
        if isinstance(value, int | float):
            return str(value)
    elif isinstance(kind, inspect.ListType | inspect.SetType | inspect.FrozenSetType):
        if isinstance(value, list):
            return [_coerce(item, kind.item_type) for item in value]
    elif isinstance(kind, inspect.StructType) and isinstance(value, dict):
        return _coerce_fields(value, kind)
    return value


def _coerce_fields(data: dict[str, Any], info: inspect.StructType) -> dict[str, Any]:
    fields = {field.encode_name: field.type for field in info.fields}
    return {k: _coerce(v, fields[k]) if k in fields else v for k, v in data.items()}


def lenient_convert(data: Any, schema: type[T]) -> T:
    """``data`` (a decoded JSON body) as ``schema``, coerced as A1111's pydantic models coerce.

    Unknown fields are ignored; a value that still does not fit raises a 422 naming the field.
    """
    info = inspect.type_info(schema)
    if isinstance(info, inspect.StructType) and isinstance(data, dict):
        data = _coerce_fields(data, info)
    try:
        return msgspec.convert(data, schema, strict=False)
    except msgspec.ValidationError as exc:
        field, reason, kind = pydantic_error(str(exc), schema)
        raise CompatError(422, reason, field, code=kind) from None


# msgspec's name of the type a value failed to be -> pydantic v1's error (msg, type), which is
# what A1111 (FastAPI on pydantic v1) answers for a value of the wrong type.
_PYDANTIC_TYPE_ERRORS = {
    "int": ("value is not a valid integer", "type_error.integer"),
    "float": ("value is not a valid float", "type_error.float"),
    "bool": ("value could not be parsed to a boolean", "type_error.bool"),
    "str": ("str type expected", "type_error.str"),
    "array": ("value is not a valid list", "type_error.list"),
    "object": ("value is not a valid dict", "type_error.dict"),
}
_WRONG_TYPE = re.compile(r"^Expected `(\w+)(?: \| null)?`, got `")


def pydantic_error(message: str, schema: Any) -> tuple[str, str, str]:
    """(field, msg, type) of a msgspec error as A1111 words it: pydantic v1's words for a
    missing field or a value of the wrong type; a value out of the schema's range or outside its
    set (limits A1111 does not have) gets the schema's rule in words."""
    field, rule = decode_error(message, schema=schema)
    if rule == REQUIRED:
        return field, "field required", "value_error.missing"
    wrong = _WRONG_TYPE.match(message)
    if wrong and wrong.group(1) in _PYDANTIC_TYPE_ERRORS:
        return field, *_PYDANTIC_TYPE_ERRORS[wrong.group(1)]
    return field, rule, "value_error"


def documented_body(
    schema: type[Any],
    description: str,
    *,
    media_type: RequestEncodingType = RequestEncodingType.JSON,
    files: tuple[str, ...] = (),
    required: tuple[str, ...] = (),
) -> Any:
    """A raw object body whose OpenAPI entry still lists ``schema``'s fields.

    The handler takes the body as a dict and converts it (lenient_convert, or a form's own
    reading); without this the API document would only say "object". ``files`` are a form's
    file fields, ``required`` the fields it cannot do without.
    """
    defs = msgspec.json.schema(schema)["$defs"]
    properties = _inline(defs[schema.__name__]["properties"], defs)
    if media_type == RequestEncodingType.MULTI_PART:  # a form field is sent or left out, never null
        properties = {name: _not_null(node) for name, node in properties.items()}
    properties.update({name: {"type": "string", "format": "binary"} for name in files})
    extra: dict[str, Any] = {"title": schema.__name__, "properties": properties}
    if required:
        extra["required"] = list(required)
    return Body(media_type=media_type, description=description, schema_extra=extra)


def _not_null(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` without its ``null`` alternative (``{"anyOf": [X, {"type": "null"}]}`` is X)."""
    kinds = [kind for kind in node.get("anyOf", ()) if kind != {"type": "null"}]
    if len(kinds) != 1:
        return node
    rest = {key: value for key, value in node.items() if key != "anyOf"}
    return {**kinds[0], **rest}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with msgspec's ``#/$defs/...`` references replaced by their definitions (the API
    document has no such ``$defs``)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: _inline(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node
