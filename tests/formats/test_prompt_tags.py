"""AUTOMATIC1111's LoRA tags: read out of a prompt, written back into one."""

from __future__ import annotations

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
        # <lora:name:te:unet>: the first weight, as the LoRA's.
        LoraTag("<LORA:x:1.2:0.5>", "x", 1.2),
        LoraTag("<lyco:y:-1>", "y", -1.0),
    ]


def test_a_prompt_without_tags_is_left_as_it_is() -> None:
    assert lora_tags("  two  spaces, <not a tag>  ") == ("  two  spaces, <not a tag>  ", [])


def test_a_weight_that_is_not_a_number_names_the_tag() -> None:
    with pytest.raises(ValueError, match=r"^<lora:paper:strong>: the weight must be a number$"):
        lora_tags("a <lora:paper:strong>")


def test_written_tags_read_back() -> None:
    text = with_lora_tags("a fox", [("paper", 0.6), ("grain", 1.0)])
    assert text == "a fox <lora:paper:0.6> <lora:grain:1>"
    assert lora_tags(text) == (
        "a fox",
        [LoraTag("<lora:paper:0.6>", "paper", 0.6), LoraTag("<lora:grain:1>", "grain", 1.0)],
    )
    assert with_lora_tags("a fox", []) == "a fox"
