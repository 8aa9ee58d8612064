"""AUTOMATIC1111's LoRA tags: read out of a prompt, written back into one."""

from __future__ import annotations

import re

import pytest

from impasto.formats.prompt_tags import LoraTag, lora_tags, with_lora_tags


def test_tags_leave_the_prompt_in_order() -> None:
    prompt, tags = lora_tags(
        "a cat <lora:paper:0.6>, sunset <lora:grain> <LORA:x:1.2:0.5> <lyco:y:-1>"
    )
    assert prompt == "a cat , sunset"
    assert tags == [
        LoraTag("<lora:paper:0.6>", "paper", 0.6),
        LoraTag("<lora:grain>", "grain", 1.0),
        # <lora:name:te:unet>: the text encoders' weight, then the UNet's.
        LoraTag("<LORA:x:1.2:0.5>", "x", 1.2, 0.5),
        LoraTag("<lyco:y:-1>", "y", -1.0),
    ]


def test_a_prompt_without_tags_is_left_as_it_is() -> None:
    assert lora_tags("  two  spaces, <not a tag>  ") == ("  two  spaces, <not a tag>  ", [])


def test_a_weight_that_is_not_a_number_names_the_tag() -> None:
    with pytest.raises(ValueError, match=r"^<lora:paper:strong>: the weight must be a number$"):
        lora_tags("a <lora:paper:strong>")


@pytest.mark.parametrize(
    ("tag", "weight", "unet_weight"),
    [
        ("<lora:x:0.5:0>", 0.5, 0.0),
        ("<lora:x:te=0.3:unet=1>", 0.3, 1.0),
        ("<lora:x:unet=0.2>", 1.0, 0.2),  # te defaults to 1, as in A1111
        ("<lora:x:0.4:TE=0.7>", 0.7, None),  # a named weight wins over the positional one
        ("<lora:x::0.5>", 1.0, 0.5),
    ],
)
def test_text_encoder_and_unet_weights(tag: str, weight: float, unet_weight: float | None) -> None:
    assert lora_tags(f"a {tag}") == ("a", [LoraTag(tag, "x", weight, unet_weight)])


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("<lora:x:1:1:8>", "a LoRA tag gives at most two weights, .*dyn.* is not supported"),
        ("<lora:x:dyn=8>", "dyn= is not a LoRA weight; allowed: te=, unet="),
        ("<lora:x:unet=big>", "the weight must be a number"),
    ],
)
def test_a_tag_with_what_is_not_a_weight_names_it(tag: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(tag)}: {message}$"):
        lora_tags(f"a {tag}")


def test_written_tags_read_back() -> None:
    loras = [("paper", 0.6, None), ("grain", 1.0, 1.0), ("te-only", 0.8, 0.0)]
    text = with_lora_tags("a fox", loras)
    assert text == "a fox <lora:paper:0.6> <lora:grain:1> <lora:te-only:0.8:0>"
    assert lora_tags(text) == (
        "a fox",
        [
            LoraTag("<lora:paper:0.6>", "paper", 0.6),
            LoraTag("<lora:grain:1>", "grain", 1.0),
            LoraTag("<lora:te-only:0.8:0>", "te-only", 0.8, 0.0),
        ],
    )
    assert with_lora_tags("a fox", []) == "a fox"
