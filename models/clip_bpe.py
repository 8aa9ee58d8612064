"""Train a small CLIP-format BPE tokenizer offline, for the random-weight test models."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
# The same normalisation and split that transformers' CLIPConverter gives CLIPTokenizerFast,
# so the merges we learn are the merges both CLIP tokenizers will apply.
CLIP_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""

_SUBJECTS = (
    "cat dog fox owl horse dragon castle city forest mountain river lake ocean beach "
    "village tower bridge garden robot astronaut knight wizard witch princess warrior "
    "girl boy woman man child portrait landscape flower rose tree house cottage temple "
    "ship spaceship car train street market library kitchen bedroom cafe island desert "
    "volcano waterfall cloud sky moon sun star galaxy planet lighthouse harbor meadow "
    "butterfly bird eagle wolf bear tiger lion deer rabbit squirrel frog turtle whale"
)
_ADJECTIVES = (
    "red blue green yellow orange purple pink black white golden silver crimson "
    "ancient futuristic cozy dark bright misty foggy rainy snowy sunny stormy quiet "
    "beautiful detailed intricate elegant epic dramatic cinematic vibrant colorful "
    "surreal dreamy magical mysterious peaceful majestic tiny giant glowing shiny "
    "wooden stone glass metallic rusty abandoned overgrown floating underwater"
)
_STYLES = (
    "oil painting|watercolor|digital art|concept art|pencil sketch|photograph|"
    "studio lighting|volumetric lighting|golden hour|soft light|rim light|bokeh|"
    "highly detailed|sharp focus|trending on artstation|unreal engine|octane render|"
    "8k|4k|hdr|masterpiece|best quality|wide angle|macro shot|35mm film|depth of field|"
    "art nouveau|impressionism|baroque|minimalist|low poly|pixel art|anime style|"
    "ink drawing|matte painting|illustration|isometric|symmetrical|vintage poster"
)
_PLACES = (
    "in the rain|at night|at sunset|at dawn|in winter|in spring|on a hill|by the sea|"
    "in a forest|under the stars|in the clouds|on mars|in tokyo|in paris|in new york|"
    "inside a cave|on a table|in a field of flowers|during a storm|in the desert"
)
_VERBS = "sitting standing walking running flying sleeping reading dancing painting eating"
_WORDS = (
    "about above across after again against along among around because before behind "
    "below beneath beside between beyond during except inside near outside through "
    "toward under until upon within without people person family friend teacher doctor "
    "farmer sailor soldier pilot queen king emperor monk priest musician singer artist "
    "scientist engineer explorer traveler merchant pirate ninja samurai viking cowboy "
    "alien monster ghost zombie vampire angel demon fairy elf dwarf giant goblin troll "
    "apple banana cherry grape lemon peach pear strawberry bread cheese coffee tea cake "
    "chocolate candy soup pizza burger noodles rice fish chicken salad wine beer water "
    "window door wall floor roof stairs chair table lamp mirror clock candle book paper "
    "letter map painting statue fountain column arch dome gate fence road path trail "
    "bicycle motorcycle airplane helicopter balloon rocket submarine boat canoe bus truck "
    "umbrella hat coat dress shirt boots gloves scarf crown armor sword shield bow arrow "
    "necklace ring jewel diamond crystal pearl feather leaf branch root seed petal grass "
    "moss fern mushroom cactus palm pine oak willow maple bamboo lotus tulip daisy orchid "
    "morning afternoon evening midnight autumn summer season weather thunder lightning "
    "rainbow shadow reflection silhouette horizon atmosphere texture pattern surface "
    "light darkness color contrast composition perspective balance harmony movement "
    "happy sad angry calm scared brave lonely proud curious gentle fierce wise young old "
    "small large huge narrow wide deep shallow high low long short round square flat "
    "smooth rough soft hard warm cold hot cool wet dry clean dirty empty full heavy "
    "beneath everything nothing something somewhere anywhere together forever never "
    "always sometimes often quickly slowly suddenly carefully beautifully extremely "
    "photorealistic hyperrealistic realistic stylized painterly cartoon comic manga "
    "sculpture ceramic porcelain marble bronze copper velvet silk leather paperwork "
    "neon cyberpunk steampunk fantasy medieval renaissance victorian modern retro "
    "gothic tropical arctic rural urban industrial nautical celestial botanical"
)


def prompt_corpus(seed: int, count: int = 6000) -> list[str]:
    """Return `count` English prompt-like lines, deterministic for a seed."""
    rng = random.Random(seed)
    subjects, adjectives, words = _SUBJECTS.split(), _ADJECTIVES.split(), _WORDS.split()
    styles, places, verbs = _STYLES.split("|"), _PLACES.split("|"), _VERBS.split()
    lines = []
    for _ in range(count):
        subject = f"a {rng.choice(adjectives)} {rng.choice(subjects)}"
        if rng.random() < 0.5:
            subject += f" {rng.choice(verbs)} {rng.choice(places)}"
        tags = rng.sample(styles, k=rng.randint(1, 4))
        if rng.random() < 0.3:
            tags[0] = f"({tags[0]}:{rng.randint(5, 15) / 10})"
        if rng.random() < 0.2:
            tags.append(f"[{rng.choice(adjectives)}]")
        if rng.random() < 0.6:
            tags.append(" ".join(rng.sample(words, k=rng.randint(1, 5))))
        if rng.random() < 0.2:
            tags.append(f"seed {rng.randint(0, 99999)}, {rng.randint(1, 9)} steps!")
        lines.append(", ".join([subject, *tags]) + rng.choice(("", ".", "!", "?")))
    return lines


def learn_merges(corpus: list[str]) -> list[tuple[str, str]]:
    """Learn BPE merges over byte-level symbols with CLIP's `</w>` end-of-word suffix."""
    tokenizer = Tokenizer(BPE(end_of_word_suffix="</w>"))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = BpeTrainer(
        vocab_size=8000,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    # tokenizers writes merges as "a b" strings in older releases and as pairs in newer ones.
    pairs = [m.split(" ") if isinstance(m, str) else m for m in merges]
    return [(left, right) for left, right in pairs]


def bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values, in CLIP's vocab order."""
    byte_values = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    # Unprintable bytes map to 256, 257, ... in byte order, after the printable ones.
    unprintable = [b for b in range(256) if b not in byte_values]
    return [chr(c) for c in byte_values + [256 + i for i in range(len(unprintable))]]


def clip_vocab(
    merges: list[tuple[str, str]], vocab_size: int | None = None
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Lay out a vocab the way CLIP's is: bytes, bytes+`</w>`, merges, filler, BOS, EOS.

    With `vocab_size` the merges are cut or the vocab padded to exactly that size.
    """
    limit = vocab_size - 2 if vocab_size else len(merges) + 512
    symbols = bytes_to_unicode()
    tokens = [*symbols, *(s + "</w>" for s in symbols)]
    seen = set(tokens)
    kept: list[tuple[str, str]] = []
    for left, right in merges:
        if len(tokens) >= limit:
            break
        if left not in seen or right not in seen:
            continue
        kept.append((left, right))
        if left + right not in seen:
            seen.add(left + right)
            tokens.append(left + right)
    # Filler entries are unreachable (the split regex never yields "<|" glued to letters);
    # they only push BOS/EOS to the top ids, where real CLIP keeps them.
    if vocab_size:
        tokens += [f"<|unused_{i}|>" for i in range(vocab_size - 2 - len(tokens))]
    tokens += [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}, kept


def write_clip_files(folder: Path, seed: int, vocab_size: int | None) -> tuple[Path, Path]:
    """Write CLIP-style `vocab.json` and `merges.txt` into `folder`; return their paths."""
    vocab, merges = clip_vocab(learn_merges(prompt_corpus(seed)), vocab_size)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
    # CLIPTokenizer skips the first line of merges.txt, as in the original file.
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    merges_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return vocab_file, merges_file
