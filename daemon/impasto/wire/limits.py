"""The allowed values of each request field, read once from the request types' constraints."""

from __future__ import annotations

import difflib
import functools
import math
import re
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import msgspec

from impasto.wire.messages import FieldLimit
from impasto.wire.requests import (
    CONTROL_FREE,
    NOT_BLANK,
    EventSeq,
    GenerateRequest,
    HiresRequest,
    KeepAlive,
    LoraSpec,
    PageLimit,
    PageOffset,
    SdUpscaleRequest,
    ThumbSize,
    UpscalerName,
)

_PATH = re.compile(r"`\$\.([A-Za-z_][\w.\[\]]*)`")
_MISSING = re.compile(r"missing required field `(\w+)`", re.IGNORECASE)
REQUIRED = "is required"  # decode_error's rule for a field the body left out
_EMPTY_PROMPT_STANDIN = "(empty)"
S = TypeVar("S", bound=msgspec.Struct)
BOOL_RULE = "must be true or false"
_MINUS_ONE = {"cache_interval": "the model family's recommended interval"}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _rule(name: str, limit: FieldLimit) -> str:
    """The sentence error messages use for a field, e.g. "must be an integer between 1 and 150"."""
    if limit.choices:
        return f"must be one of {', '.join(limit.choices)}"
    if limit.type == "bool":
        return BOOL_RULE
    if limit.type == "str":
        rules = {
            NOT_BLANK: ", not only spaces, without control characters (tab and newline are fine)",
            CONTROL_FREE: ", without control characters (tab and newline are fine)",
        }
        more = rules.get(limit.pattern or "", "")
        if limit.max_length is None:
            return f"must be text{more}"
        if limit.min_length:
            return f"must be text of {limit.min_length} to {limit.max_length} characters{more}"
        return f"must be text of at most {limit.max_length} characters{more}"
    low, high = limit.minimum, limit.maximum
    if low is None or high is None:
        return ""
    kind = "an integer" if limit.type == "int" else "a number"
    if limit.multiple_of:
        kind = f"an integer multiple of {limit.multiple_of}"
    if low == -1 and limit.type == "int":
        meaning = _MINUS_ONE.get(name, "random")
        return f"must be -1 ({meaning}) or {kind} between 0 and {_number(high)}"
    return f"must be {kind} between {_number(low)} and {_number(high)}"


def literal_values(hint: Any) -> tuple[Any, ...] | None:
    """A field's Literal values in the order the type declares them (msgspec sorts them)."""
    if get_origin(hint) is Literal:
        return get_args(hint)
    for inner in get_args(hint):  # through Annotated[...] and X | None
        found = literal_values(inner)
        if found is not None:
            return found
    return None


def _allows_bool(hint: Any) -> bool:
    """Whether ``bool`` is one of the types ``hint`` allows (through Annotated and unions)."""
    return hint is bool or any(_allows_bool(inner) for inner in get_args(hint))


def _field_limit(info: Any, hint: Any = None) -> FieldLimit | None:
    inspect = msgspec.inspect
    if isinstance(info, inspect.UnionType):
        kinds = [t for t in info.types if not isinstance(t, inspect.NoneType)]
        if len(kinds) != 1:
            return None
        info = kinds[0]
    if isinstance(info, inspect.Metadata):
        info = info.type
    if isinstance(info, inspect.LiteralType):
        values = literal_values(hint) or info.values
        return FieldLimit(type="str", choices=[str(v) for v in values])
    if isinstance(info, inspect.BoolType):
        return FieldLimit(type="bool")
    if isinstance(info, inspect.IntType | inspect.FloatType):
        return FieldLimit(
            type="int" if isinstance(info, inspect.IntType) else "float",
            minimum=info.ge,
            maximum=info.le,
            multiple_of=int(info.multiple_of) if info.multiple_of else None,
        )
    if isinstance(info, inspect.StrType):
        return FieldLimit(
            type="str",
            min_length=info.min_length,
            max_length=info.max_length,
            pattern=info.pattern,
        )
    return None


def _read_limits() -> dict[str, FieldLimit]:
    found: dict[str, FieldLimit] = {}
    for struct, prefix in (
        (GenerateRequest, ""),
        (LoraSpec, "lora_"),
        (HiresRequest, "hires_"),
        (SdUpscaleRequest, "sd_upscale_"),
    ):
        info = msgspec.inspect.type_info(struct)
        assert isinstance(info, msgspec.inspect.StructType)
        hints = get_type_hints(struct, include_extras=True)
        for field in info.fields:
            limit = _field_limit(field.type, hints.get(field.name))
            if limit is not None and (
                limit.maximum is not None or limit.choices or limit.max_length
            ):
                name = prefix + field.name
                found[name] = msgspec.structs.replace(limit, rule=_rule(name, limit))
    return found


LIMITS: dict[str, FieldLimit] = _read_limits()
"""Request field -> its limits; ``lora_weight`` and ``lora_name`` are a LoRA's."""
# The built-in hires upscalers; GET /limits adds the installed super-resolution models.
LIMITS["hires_upscaler"] = FieldLimit(
    type="str",
    choices=list(get_args(UpscalerName)),
    rule=f"must be one of {', '.join(get_args(UpscalerName))} "
    "or the name of an installed super-resolution model (GET /api/v1/upscalers)",
)


def _limit_of(kind: Any) -> FieldLimit:
    limit = _field_limit(msgspec.inspect.type_info(kind))
    assert limit is not None and limit.maximum is not None, f"{kind} has no range"
    return limit


QUERY_LIMITS: dict[str, FieldLimit] = {
    name: msgspec.structs.replace(limit, rule=_rule(name, limit))
    for name, limit in (
        ("limit", _limit_of(PageLimit)),
        ("offset", _limit_of(PageOffset)),
        ("keep_alive", _limit_of(KeepAlive)),
        ("thumb", _limit_of(ThumbSize)),
        ("since", _limit_of(EventSeq)),
    )
}
"""Query parameters with a range -> their limits."""


def bounds(kind: Any) -> dict[str, Any]:
    """``ge``, ``le`` (and a description) of a ranged type, for a route's ``QueryParameter``."""
    limit = _limit_of(kind)
    schema = getattr(msgspec.inspect.type_info(kind), "extra_json_schema", None) or {}
    found: dict[str, Any] = {"ge": limit.minimum, "le": limit.maximum}
    return {**found, "description": schema["description"]} if "description" in schema else found


# Rules of fields whose allowed values are not a range (installed names), and query parameters.
_OTHER_RULES = {
    "weight": LIMITS["lora_weight"].rule,
    **{name: limit.rule for name, limit in QUERY_LIMITS.items()},
    "vae": "must be the name of a VAE folder installed in the models folder's vae/",
    "refiner": "must be the id of an installed SDXL refiner model",
}

FIELD_RULES: dict[str, str] = {
    **{name: limit.rule for name, limit in LIMITS.items()},
    **_OTHER_RULES,
}
"""The allowed values of each request field, as error messages say them."""


def field_rule(field: str) -> str | None:
    """The rule of a field path: ``hires.scale`` is ``hires_scale``, else its last part."""
    path = re.sub(r"\[\d+\]", "", field)
    return FIELD_RULES.get(path.replace(".", "_")) or FIELD_RULES.get(path.rsplit(".", 1)[-1])


def error_path(message: str) -> str | None:
    """The field a msgspec error is at (``loras[0].weight``), None for the body itself."""
    match = _PATH.search(message)
    # ``plugins[...]``: msgspec's mark for a map's value; the field is the map.
    return match.group(1).split("[...]")[0] if match else None


ENUM_ERROR = "Invalid enum value"  # how msgspec starts the error of a value outside a Literal
MSGSPEC_RULE = "Expected `"  # how msgspec starts the error of a value out of range or type
UNKNOWN_FIELD = "is not a field of this request"
LIST_FIELDS_UP_TO = 12  # an unknown field's error lists the fields of a body that has so few
_OUT_OF_RANGE = "Number out of range"  # msgspec's error of a number past a float's range
OUT_OF_RANGE_RULE = "holds a number too large to read (past a 64-bit float's range)"
_BOOL_ERROR = re.compile(r"Expected `bool( \| null)?`, got")
# msgspec's words for a constraint (a field with no rule of its own: a query parameter)
_LENGTH_ERROR = re.compile(r"^Expected `(str|array|object)` of length (<=|>=) (\d+)$")
_BOUND_ERROR = re.compile(r"^Expected `(int|float)` (<=|>=|<|>) (\S+)$")
_MULTIPLE_ERROR = re.compile(r"^Expected `(int|float)` that is a multiple of (\S+)$")
_UNITS = {"str": "characters", "array": "items", "object": "entries"}
_BOUNDS = {"<=": "of at most", ">=": "of at least", "<": "below", ">": "above"}


def _struct_in(hint: Any) -> type | None:
    """The msgspec Struct a type is or holds (through Annotated, ``| None`` and lists; not as
    the values of a map, whose keys are not fields)."""
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return hint
    if get_origin(hint) is dict:
        return None
    for inner in get_args(hint):
        found = _struct_in(inner)
        if found is not None:
            return found
    return None


def unknown_field(data: Any, schema: Any, where: str = "") -> tuple[str, str] | None:
    """The first field of ``data`` (a decoded JSON body) that its struct in ``schema`` does not
    have, at any depth, and its rule: ``("loras[0].weigth", "is not a field of this request;
    did you mean weight?")``. None when every field is known (or ``schema`` holds no struct)."""
    kind = _struct_in(schema)
    if kind is None:
        return None
    if isinstance(data, list):
        if len(data) > _max_length(schema):
            return None  # the decode says the list is too long, before reading a million items
        for index, item in enumerate(data):
            found = unknown_field(item, kind, f"{where}[{index}]")
            if found is not None:
                return found
        return None
    if not isinstance(data, dict):
        return None
    fields = _fields_of(kind)
    for name, value in data.items():
        path = f"{where}.{name}" if where else str(name)
        if name not in fields:
            return path, UNKNOWN_FIELD + _which_instead(str(name), list(fields))
        found = unknown_field(value, fields[name], path)
        if found is not None:
            return found
    return None


@functools.cache
def _fields_of(kind: type) -> dict[str, Any]:
    """A struct's fields as JSON names them, with their types."""
    hints = get_type_hints(kind, include_extras=True)
    return {f.encode_name: hints[f.name] for f in msgspec.structs.fields(kind)}


def _max_length(hint: Any) -> float:
    """The most items a list type (``Annotated[list[...], Meta(max_length=...)]``) allows."""
    for meta in get_args(hint)[1:] if get_origin(hint) is Annotated else ():
        if isinstance(meta, msgspec.Meta) and meta.max_length is not None:
            return meta.max_length
    return math.inf


def _which_instead(name: str, fields: list[str]) -> str:
    """What to send instead of the unknown field ``name``: the closest field, else the fields
    (a few) or where they are listed (many)."""
    close = difflib.get_close_matches(name, fields, n=1)
    if close:
        return f"; did you mean {close[0]}?"
    if len(fields) <= LIST_FIELDS_UP_TO:
        return f"; its fields are {', '.join(fields)}"
    return "; its fields are listed in the API document (/schema)"


def _field_type(schema: Any, field: str) -> tuple[str, Any] | None:
    """The last name of ``field`` (``hires.upscaler``, ``loras[0].x``) and its type in the body
    type ``schema``; None when the field is not there."""
    kind, hint, name = _struct_in(schema), None, field
    for name in re.sub(r"\[\d+\]", "", field).split("."):
        if kind is None:
            return None
        hint = get_type_hints(kind, include_extras=True).get(name)
        kind = _struct_in(hint)
    return None if hint is None else (name, hint)


def _is_range(schema: Any, field: str) -> bool:
    """Whether ``field``'s type in ``schema`` is a number with a range of its own."""
    found = _field_type(schema, field)
    if found is None:
        return False
    limit = _field_limit(msgspec.inspect.type_info(found[1]), found[1])
    return (
        limit is not None
        and limit.type in ("int", "float")
        and limit.minimum is not None
        and limit.maximum is not None
    )


def schema_rule(schema: Any, field: str) -> str | None:
    """The rule of ``field`` (``hires.upscaler``, ``loras[0].x``) read from its type in the body
    type ``schema``: "must be one of ..." for a Literal, the range or the text rule otherwise;
    None when the field is not there or its type has no rule."""
    found = _field_type(schema, field)
    if found is None:
        return None
    name, hint = found
    values = literal_values(hint)
    if values:
        choices = ", ".join(str(v) for v in values)
        if _allows_bool(hint):  # bool | Literal[...]: tiling is true, false, "x" or "y"
            return f"must be true, false or one of {choices}"
        return f"must be one of {choices}"
    limit = _field_limit(msgspec.inspect.type_info(hint), hint)
    return (_rule(name, limit) or None) if limit is not None else None


def _has_own_types(schema: Any) -> bool:
    """Whether ``schema`` is a body other than the native request types of this package."""
    kind = _struct_in(schema)
    return kind is not None and not kind.__module__.startswith(__name__.rsplit(".", 1)[0])


def constraint_words(rule: str) -> str:
    """msgspec's words for a broken length, bound or multiple (``Expected `str` of length <=
    1000``) as a rule in the words every other field's error uses; other words as they are."""
    length = _LENGTH_ERROR.match(rule)
    if length:
        kind, op, size = length.groups()
        what = "text" if kind == "str" else "a list" if kind == "array" else "an object"
        return f"must be {what} {_BOUNDS[op]} {size} {_UNITS[kind]}"
    bound = _BOUND_ERROR.match(rule)
    if bound:
        kind, op, value = bound.groups()
        return f"must be {'an integer' if kind == 'int' else 'a number'} {_BOUNDS[op]} {value}"
    multiple = _MULTIPLE_ERROR.match(rule)
    if multiple:
        return f"must be a multiple of {multiple.group(2)}"
    return rule


def decode_error(message: str, field: str | None = None, schema: Any = None) -> tuple[str, str]:
    """(field, message) of a msgspec decode error: ``Expected `int` <= 150 - at `$.steps```
    is ``steps`` and its rule in words; a nested path keeps its indexes (``loras[0].weight``).

    A field with no rule of its own name is given the rule of its type in ``schema`` (the body
    type that was decoded), and msgspec's own words only where neither has one; a body outside
    the native types reads its own types first.
    """
    where = error_path(message)
    missing = _MISSING.search(message)
    if missing:
        return (f"{where}.{missing.group(1)}" if where else missing.group(1)), REQUIRED
    field = field or where or "body"
    # A body of its own (A1111's, OpenAI's) may share a field's name with a native request
    # field but not its rule (A1111's resize_mode is 0 or 1): its own types come first.
    own = schema_rule(schema, field) if schema is not None else None
    if not _has_own_types(schema) and not _is_range(schema, field):
        # A native body's field keeps the rule of its name, unless its own type is a range:
        # an upscale's width (8..8192) is not a generation's width (64..2048, multiple of 8).
        own = None
    rule = own or field_rule(field) or message.split(" - at ")[0]
    if rule == _OUT_OF_RANGE:  # 1e400 where any JSON value goes (a plugin's options)
        rule = OUT_OF_RANGE_RULE
    if schema is not None and rule.startswith((ENUM_ERROR, MSGSPEC_RULE)):
        rule = schema_rule(schema, field) or rule
    if _BOOL_ERROR.match(rule):  # a flag, in a body or a query, has one rule wherever it is
        rule = BOOL_RULE
    return field, constraint_words(rule)


def convert_allowing_empty_prompt(
    fields: dict[str, Any], schema: type[S], *, strict: bool = True
) -> S:
    """``fields`` as ``schema``, checked against its rules, but for an empty or blank prompt.

    The native API insists on a prompt; A1111, OpenAI's variations and the engine accept none.
    The check runs on a stand-in and the result keeps the prompt as sent. Raises msgspec's
    ValidationError (``decode_error`` reads it).
    """
    prompt = fields.get("prompt") or ""
    candidate = {**fields, "prompt": prompt if prompt.strip() else _EMPTY_PROMPT_STANDIN}
    converted = msgspec.convert(candidate, schema, strict=strict)
    return msgspec.structs.replace(converted, prompt=prompt)
