"""Output PNGs: A1111 parameters text, embedded chunks, atomic writes, temp cleanup."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from impasto.formats import png as outputs
from impasto.formats.png import (
    format_a1111_parameters,
    parse_a1111_parameters,
    read_png_metadata,
    remove_stale_temp_files,
    write_png,
)

REAL_LOOKING = (
    "masterpiece, best quality, 1girl, <lora:add_detail:0.6>, (detailed eyes:1.2),\n"
    "cherry blossoms, <lora:more_details:0.4>\n"
    "Negative prompt: (worst quality:1.4), lowres, EasyNegative\n"
    "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3527712063, "
    "Size: 512x768, Model hash: 7f96a1a9ca, Model: anything-v5, Denoising strength: 0.45, "
    "Clip skip: 2, Hires upscaler: R-ESRGAN 4x+ Anime6B, "
    'Lora hashes: "add_detail: 7c6bad76eb54, more_details: 3b8aa1d351ef", '
    'Template: "a \\"quoted\\" word, then more", Version: v1.10.1'
)


def settings(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "prompt": "a red fox in snow",
        "negative_prompt": "blurry",
        "steps": 20,
        "sampler_name": "Euler a",
        "schedule_type": "Karras",
        "cfg_scale": 7.0,
        "seed": 1,
        "width": 512,
        "height": 512,
        "model": "tiny-sd",
        "extra": None,
    }
    return {**base, **overrides}


def png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    """The (type, data) chunks of a PNG file, read without Pillow."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        chunks.append((kind, data[offset + 8 : offset + 8 + length]))
        offset += 12 + length
    return chunks


def test_format_matches_a1111_layout() -> None:
    text = format_a1111_parameters(**settings())
    assert text == (
        "a red fox in snow\n"
        "Negative prompt: blurry\n"
        "Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 1, "
        "Size: 512x512, Model: tiny-sd"
    )


def test_format_omits_empty_fields_and_quotes_extras() -> None:
    text = format_a1111_parameters(
        **settings(
            negative_prompt="",
            schedule_type=None,
            cfg_scale=7.5,
            model=None,
            extra={"Denoising strength": 0.75, "Lora hashes": "a: 1, b: 2", "Skip": None},
        )
    )
    assert "Negative prompt" not in text
    assert "Schedule type" not in text and "Model:" not in text and "Skip" not in text
    assert text.splitlines()[-1] == (
        "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1, Size: 512x512, "
        'Denoising strength: 0.75, Lora hashes: "a: 1, b: 2"'
    )


def test_parse_real_looking_a1111_text() -> None:
    parsed = parse_a1111_parameters(REAL_LOOKING)
    assert parsed["prompt"] == (
        "masterpiece, best quality, 1girl, <lora:add_detail:0.6>, (detailed eyes:1.2),\n"
        "cherry blossoms, <lora:more_details:0.4>"
    )
    assert parsed["negative_prompt"] == "(worst quality:1.4), lowres, EasyNegative"
    assert (parsed["steps"], parsed["sampler_name"], parsed["schedule_type"]) == (
        30,
        "DPM++ 2M",
        "Karras",
    )
    assert (parsed["cfg_scale"], parsed["seed"]) == (6.5, 3527712063)
    assert (parsed["width"], parsed["height"], parsed["model"]) == (512, 768, "anything-v5")
    extra = parsed["extra"]
    assert extra["Lora hashes"] == "add_detail: 7c6bad76eb54, more_details: 3b8aa1d351ef"
    assert extra["Template"] == 'a "quoted" word, then more'
    assert extra["Model hash"] == "7f96a1a9ca" and extra["Clip skip"] == "2"
    assert extra["Hires upscaler"] == "R-ESRGAN 4x+ Anime6B"
    assert extra["Version"] == "v1.10.1"


def test_parse_without_negative_prompt_and_multiline_negative() -> None:
    plain = parse_a1111_parameters(
        "a cat\nSteps: 4, Sampler: Euler, CFG scale: 7, Seed: 9, Size: 64x64"
    )
    assert plain["prompt"] == "a cat" and plain["negative_prompt"] == ""
    assert plain["steps"] == 4 and plain["width"] == 64 and plain["model"] is None
    multi = parse_a1111_parameters(
        "line one\nline two\nNegative prompt: bad\nworse\nSteps: 4, Sampler: Euler, Seed: 9"
    )
    assert multi["prompt"] == "line one\nline two"
    assert multi["negative_prompt"] == "bad\nworse"


def test_parse_prompt_only_text() -> None:
    parsed = parse_a1111_parameters("just a prompt, with: a colon")
    assert parsed["prompt"] == "just a prompt, with: a colon"
    assert parsed["steps"] is None and parsed["extra"] == {}


def test_parse_keeps_unconvertible_known_field_in_extra() -> None:
    parsed = parse_a1111_parameters("p\nSteps: many, Sampler: Euler, Seed: 3")
    assert parsed["steps"] is None and parsed["extra"] == {"Steps": "many"}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"prompt": "multi\nline, <lora:style:0.7>, (a: 1.2)", "negative_prompt": "x\ny"},
        {"negative_prompt": None, "cfg_scale": 4.25, "seed": 2**32 - 1, "width": 1024},
        {"extra": {"Denoising strength": 0.5, "Lora hashes": "style: abc, other: def"}},
    ],
)
def test_format_parse_round_trip(overrides: dict[str, Any]) -> None:
    values = settings(**overrides)
    parsed = parse_a1111_parameters(format_a1111_parameters(**values))
    assert parsed["prompt"] == values["prompt"]
    assert parsed["negative_prompt"] == (values["negative_prompt"] or "")
    for key in ("steps", "sampler_name", "cfg_scale", "seed", "width", "height", "model"):
        assert parsed[key] == values[key], key
    assert parsed["schedule_type"] == "Karras"
    expected_extra = {k: str(v) for k, v in (values["extra"] or {}).items()}
    assert parsed["extra"] == expected_extra


def test_write_png_embeds_both_chunks(tmp_path: Path) -> None:
    image = Image.new("RGB", (16, 8), (200, 30, 40))
    request = {"prompt": "a fox", "steps": 4, "loras": [{"name": "x", "weight": 0.5}]}
    text = format_a1111_parameters(**settings(prompt="a fox"))
    path = write_png(image, tmp_path / "out.png", parameters=text, request_json=request)
    assert path == tmp_path / "out.png"
    with Image.open(path) as reopened:
        assert isinstance(reopened, PngImagePlugin.PngImageFile)
        assert reopened.size == (16, 8)
        assert reopened.getpixel((3, 3)) == (200, 30, 40)
        assert reopened.text["parameters"] == text
        assert json.loads(reopened.text["impasto"]) == request
    kinds = [kind for kind, _ in png_chunks(path)]
    assert kinds.index(b"tEXt") < kinds.index(b"IDAT")
    assert b"iTXt" in kinds
    assert read_png_metadata(path) == {"parameters": text, "impasto": request}
    assert read_png_metadata(path.read_bytes()) == {"parameters": text, "impasto": request}
    assert list(tmp_path.iterdir()) == [path]


def test_non_latin_parameters_use_itxt(tmp_path: Path) -> None:
    text = format_a1111_parameters(**settings(prompt="猫 on a mat"))
    path = write_png(Image.new("L", (8, 8)), tmp_path / "cat.png", parameters=text, request_json={})
    chunks = png_chunks(path)
    assert any(kind == b"iTXt" and data.startswith(b"parameters\0") for kind, data in chunks)
    assert read_png_metadata(path)["parameters"] == text


def test_read_png_without_metadata(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(path)
    assert read_png_metadata(path) == {"parameters": None, "impasto": None}


def test_failed_rename_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(outputs.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        write_png(Image.new("RGB", (8, 8)), tmp_path / "x.png", parameters="p", request_json={})
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_png(
        Image.new("RGB", (8, 8)), tmp_path / "x.png", parameters="old", request_json={}
    )
    before = path.read_bytes()

    def broken_save(*args: Any, **kwargs: Any) -> None:
        raise OSError("no space left")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="no space"):
        write_png(Image.new("RGB", (8, 8)), path, parameters="new", request_json={})
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_final_name_appears_only_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    final = tmp_path / "y.png"
    seen: list[tuple[str, bool, bytes]] = []
    real_replace = os.replace

    def spying_replace(src: str, dst: str) -> None:
        seen.append((Path(src).name, Path(dst).exists(), Path(src).read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", spying_replace)
    write_png(Image.new("RGB", (8, 8)), final, parameters="p", request_json={"a": 1})
    (temp_name, final_existed, temp_bytes) = seen[0]
    assert temp_name.startswith(".") and temp_name.endswith(".tmp")
    assert not final_existed
    assert temp_bytes == final.read_bytes() and temp_bytes.endswith(b"IEND\xaeB`\x82")


def test_remove_stale_temp_files(tmp_path: Path) -> None:
    day = tmp_path / "2025-01-01"
    day.mkdir()
    stale = [tmp_path / ".a.png.x1.tmp", day / ".b.png.x2.tmp"]
    kept = [tmp_path / "keep.tmp", day / ".hidden", day / "done.png"]
    for file in stale + kept:
        file.write_bytes(b"partial")
    assert remove_stale_temp_files(tmp_path) == 2
    assert not any(file.exists() for file in stale)
    assert all(file.exists() for file in kept)
    assert remove_stale_temp_files(tmp_path / "missing") == 0
