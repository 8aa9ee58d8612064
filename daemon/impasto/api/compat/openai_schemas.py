"""Wire schemas of the OpenAI images API, named as OpenAI's own API document names them."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from impasto.wire import (
    BatchSize,
    CfgScale,
    Fraction,
    NegativePrompt,
    Prompt,
    Schema,
    Seed,
    Steps,
)

# How the images come back; what gpt-image-1 encodes them as (jpeg and webp take
# output_compression 0-100).
ResponseFormat = Literal["url", "b64_json"]
OutputFormat = Literal["png", "jpeg", "webp"]
# OpenAI's values (dall-e-3's and the gpt-image models', xhigh and max included), accepted and
# without effect here; but not OpenAI's "transparent" background, which this engine cannot draw
# (its pictures are opaque).
Quality = Literal["standard", "hd", "low", "medium", "high", "xhigh", "max", "auto"]
Style = Literal["vivid", "natural"]
Background = Literal["opaque", "auto"]


class ImageGenerationRequest(Schema):
    """OpenAI's image generation body; the last six fields are Impasto extensions."""

    prompt: Prompt
    model: str | None = None
    n: BatchSize | None = 1
    size: str | None = None
    response_format: ResponseFormat | None = None
    quality: Quality | None = None
    style: Style | None = None
    user: str | None = None
    background: Background | None = None
    output_format: OutputFormat | None = None
    output_compression: Annotated[int, Meta(ge=0, le=100)] | None = None
    stream: bool | None = None
    partial_images: Annotated[int, Meta(ge=0, le=3)] | None = None
    negative_prompt: NegativePrompt | None = None
    seed: Seed | None = None
    steps: Steps | None = None
    cfg_scale: CfgScale | None = None
    sampler: str | None = None
    strength: Fraction | None = None


class Image(Schema):
    """One generated image: ``b64_json`` or, with ``response_format: url``, ``url``; the other
    is left out of the JSON, as OpenAI leaves it."""

    b64_json: str | UnsetType = UNSET
    url: str | UnsetType = UNSET


# The sizes OpenAI's document allows in an answer's ``size`` (an enum: generated clients
# refuse a response with another value, so another size leaves the field out).
RESPONSE_SIZES = ("1024x1024", "1024x1536", "1536x1024")


class ImagesResponse(Schema):
    """What images.generate, images.edit and images.create_variation answer; ``size`` only
    where it is one of RESPONSE_SIZES."""

    created: int
    data: list[Image]
    output_format: str
    size: str | UnsetType = UNSET


StreamEventType = Literal[
    "image_generation.partial_image",
    "image_generation.completed",
    "image_edit.partial_image",
    "image_edit.completed",
]


class ImageStreamEvent(Schema):
    """One server-sent event of a streamed generation or edit (``stream: true``), as OpenAI's
    ImageGenPartialImageEvent and ImageGenCompletedEvent (and their ``image_edit`` twins): a
    partial image carries ``partial_image_index``."""

    type: StreamEventType
    b64_json: str
    created_at: int
    size: str
    quality: str
    background: str
    output_format: str
    partial_image_index: int | UnsetType = UNSET


class Model(Schema):
    """An installed model, as OpenAI lists a model."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ListModelsResponse(Schema):
    """GET /v1/models."""

    object: Literal["list"]
    data: list[Model]
