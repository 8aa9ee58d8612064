"""The model catalog: every entry is complete, and each provider resolves to the right build."""

from __future__ import annotations

from pathlib import Path

import pytest

from impasto.services.convert import converter_hint
from impasto.services.errors import FieldError
from impasto.services.known import (
    PROVIDER_VARIANT,
    CatalogError,
    CatalogSource,
    NoVariantError,
    catalog_file,
    catalog_rows,
    known_models,
    parse_entry,
    resolve_variant,
)
from impasto.services.sources import parse_source

CATALOG = known_models(catalog_file())
# The models the catalog promises (issue 18): base models, turbo, LCM, a fine-tune, TAESD.
PROMISED = {
    "sd15",
    "sd21",
    "sdxl-base",
    "sdxl-refiner",
    "sd-turbo",
    "sdxl-turbo",
    "lcm-dreamshaper-v7",
    "dreamshaper-8",
    "taesd",
    "taesdxl",
}
FAMILIES = {"sd1", "sd2", "sd2-v", "sdxl", "sd-turbo", "sdxl-turbo", "lcm", "inpaint"}


def test_the_catalog_offers_the_models_people_use() -> None:
    assert set(CATALOG) >= PROMISED


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_entry_is_complete(name: str) -> None:
    entry = CATALOG[name]
    assert entry.license, f"{name} names no license"
    assert entry.family in FAMILIES
    assert entry.description and entry.checked.startswith("20"), "say what was checked, when"
    assert "portable" in entry.variants or entry.no_portable, "a portable build or why not"
    for variant in entry.variants.values():
        assert "/" in variant.repo and variant.size > 0 and variant.precision in ("fp16", "fp32")
        assert variant.repo in entry.checked, f"{name}: {variant.repo} was not checked"
        if variant.convert:
            assert variant.convert_minutes > 0  # the user is told how long a conversion takes


def test_sd_turbo_resolves_per_provider() -> None:
    """The issue's done-when: one command, a CUDA build on CUDA and a CPU-runnable one on CPU."""
    turbo = CATALOG["sd-turbo"]
    assert resolve_variant(turbo, "CUDAExecutionProvider").repo == "onnxruntime/sd-turbo"
    portable = resolve_variant(turbo, "CPUExecutionProvider")
    assert portable.key == "portable" and portable.repo != "onnxruntime/sd-turbo"
    for provider in (
        "DmlExecutionProvider",
        "CoreMLExecutionProvider",
        "TensorrtExecutionProvider",
    ):
        assert resolve_variant(turbo, provider).key == "portable"


def entry_with(**variants: dict[str, object]) -> object:
    return parse_entry(
        "m", {"license": "mit", "family": "sd1", "no_portable": "none made", "variants": variants}
    )


@pytest.mark.parametrize("provider", sorted(PROVIDER_VARIANT))
def test_each_provider_takes_its_own_build_then_the_portable_one(provider: str) -> None:
    own = PROVIDER_VARIANT[provider]
    builds = {
        key: {"repo": f"o/{key}", "precision": "fp16", "size": 1}
        for key in PROVIDER_VARIANT.values()
    }
    full = entry_with(**builds, portable={"repo": "o/portable", "precision": "fp32", "size": 1})
    assert resolve_variant(full, provider).repo == f"o/{own}"  # type: ignore[arg-type]
    others = {k: v for k, v in builds.items() if k != own}
    fallback = entry_with(**others, portable={"repo": "o/portable", "precision": "fp32", "size": 1})
    assert resolve_variant(fallback, provider).key == "portable"  # type: ignore[arg-type]


def parse_turbo(provider: str, **options: str) -> tuple[dict[str, object], str]:
    """``sd-turbo`` as an install request names it, on ``provider``."""
    return parse_source(
        "sd-turbo", revision=None, subfolder=None, known=CATALOG, provider=provider, **options
    )


@pytest.mark.parametrize(
    ("precision", "expected"),
    [("", "cuda"), ("fp16", "cuda"), ("fp32", "portable"), ("int8", "portable")],
)
def test_an_asked_precision_picks_the_build_it_is_made_from(precision: str, expected: str) -> None:
    """fp32 or int8 asked on CUDA: the portable fp32 build, not the fp16 CUDA one (int8
    quantises fp32 weights; fp16 ones are not widened). fp16: the CUDA build stays."""
    turbo = CATALOG["sd-turbo"]
    assert resolve_variant(turbo, "CUDAExecutionProvider", precision=precision).key == expected
    source, _ = parse_turbo("CUDAExecutionProvider", precision=precision)
    assert source["variant"] == expected
    # A build named by key wins over the precision (the install then warns or refuses).
    named = resolve_variant(turbo, "CPUExecutionProvider", "cuda", precision)
    assert named.key == "cuda"


def test_a_precision_no_build_is_made_from_keeps_the_providers_pick() -> None:
    fp16_only = entry_with(
        cuda={"repo": "o/cuda", "precision": "fp16", "size": 1},
        portable={"repo": "o/portable", "precision": "fp16", "size": 1},
    )
    for precision in ("fp32", "int8"):
        build = resolve_variant(fp16_only, "CUDAExecutionProvider", precision=precision)  # type: ignore[arg-type]
        assert build.key == "cuda"
    # On the CPU provider, fp16 asked: the portable fp32 build (converted), as with no precision.
    assert resolve_variant(CATALOG["sd-turbo"], "CPUExecutionProvider", precision="fp16").key == (
        "portable"
    )


def test_a_missing_build_names_the_alternatives() -> None:
    only_cuda = entry_with(cuda={"repo": "o/cuda", "precision": "fp16", "size": 2_600_000_000})
    with pytest.raises(NoVariantError) as caught:
        resolve_variant(only_cuda, "CPUExecutionProvider")  # type: ignore[arg-type]
    message = str(caught.value)
    assert "no build for CPU" in message and "cuda: o/cuda (fp16, 2.6 GB)" in message
    assert "none made" in message and "--variant" in message and "--force" in message
    # Through the install request it is a 422 on the field.
    with pytest.raises(FieldError) as field:
        parse_source(
            "m",
            revision=None,
            subfolder=None,
            known={"m": only_cuda},
            provider="CPUExecutionProvider",
        )  # type: ignore[dict-item]
    assert field.value.field == "source" and "o/cuda" in str(field.value)


def test_asking_for_a_build_by_name() -> None:
    turbo = CATALOG["sd-turbo"]
    source, model_id = parse_turbo("CPUExecutionProvider", variant="cuda")
    assert source["repo"] == "onnxruntime/sd-turbo" and source["variant"] == "cuda"
    assert model_id == "sd-turbo"
    with pytest.raises(NoVariantError):
        resolve_variant(turbo, "CPUExecutionProvider", "coreml")


def test_listing_shows_what_this_machine_gets() -> None:
    rows = {r.entry.name: r for r in catalog_rows(CATALOG, "CPUExecutionProvider", "no converter")}
    assert rows["sd-turbo"].chosen is not None and rows["sd-turbo"].chosen.key == "portable"
    assert converter_hint() in rows["sd-turbo"].summary
    assert "the converter is not installed" in rows["sd-turbo"].summary
    assert rows["taesd"].chosen is not None and rows["taesd"].chosen.convert
    assert rows["taesd"].chosen.repo == "madebyollin/taesd"


def test_a_plain_entry_is_one_build_and_malformed_ones_are_refused(tmp_path: Path) -> None:
    catalog = tmp_path / "c.toml"
    catalog.write_text('[tiny]\nrepo = "impasto/sd-tiny"\nlicense = "mit"\nfamily = "sd1"\n')
    tiny = known_models(catalog)["tiny"]
    assert resolve_variant(tiny, "CUDAExecutionProvider").key == "default"
    with pytest.raises(CatalogError, match="unknown variant"):
        parse_entry("x", {"variants": {"gpu": {"repo": "a/b"}}})
    with pytest.raises(CatalogError, match="no portable build and no no_portable"):
        parse_entry("x", {"variants": {"cuda": {"repo": "a/b"}}})
    with pytest.raises(CatalogError, match="repo must be"):
        parse_entry("x", {"variants": {"portable": {"repo": "nope"}}})


TINY_ENTRY = '[tiny]\nrepo = "impasto/sd-tiny"\nlicense = "mit"\nfamily = "sd1"\n'


def test_a_catalog_file_that_cannot_be_used_is_named(tmp_path: Path) -> None:
    catalog = tmp_path / "c.toml"
    catalog.write_text("[[broken]\n")
    with pytest.raises(CatalogError, match=r"c\.toml: not valid TOML"):
        CatalogSource(catalog).check()
    catalog.write_text('[x]\nvariants = {gpu = {repo = "a/b"}}\n')
    with pytest.raises(CatalogError, match=r"c\.toml: x: unknown variant"):
        CatalogSource(catalog).check()


def test_an_edit_that_breaks_the_catalog_keeps_the_last_good_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = tmp_path / "c.toml"
    catalog.write_text(TINY_ENTRY)
    source = CatalogSource(catalog)
    assert list(source.check()) == ["tiny"]
    catalog.write_text(TINY_ENTRY + "[[oops\n")
    with caplog.at_level("WARNING"):
        assert list(source.entries()) == ["tiny"]
    assert "c.toml: not valid TOML" in caplog.text and "last read is kept" in caplog.text
    catalog.write_text(TINY_ENTRY + TINY_ENTRY.replace("[tiny]", "[tiny2]") + "\n")
    assert list(source.entries()) == ["tiny", "tiny2"]  # a good edit is read again
