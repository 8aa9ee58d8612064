"""CLIP BPE tokenizer built with ``tokenizers`` from a folder's vocab.json and merges.txt."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE

from impasto.engine.types import ModelFolderError

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
CONTEXT_LENGTH = 77
# The normalisation and split transformers' CLIPConverter gives CLIPTokenizerFast.
_CLIP_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


class ClipTokenizer:
    """Text to CLIP token ids without special tokens; the encoder adds BOS/EOS per chunk."""

    def __init__(self, folder: Path, pad_token: str | None = None) -> None:
        self.folder, self.pad_token = folder, pad_token
        vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
        try:
            vocab: dict[str, int] = json.loads(vocab_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelFolderError(str(vocab_path), f"not a readable vocabulary ({exc})") from exc
        try:
            model = BPE.from_file(
                str(vocab_path),
                str(merges_path),
                continuing_subword_prefix="",
                end_of_word_suffix="</w>",
                fuse_unk=False,
                unk_token=EOS,
            )
        except Exception as exc:  # tokenizers raises plain Exception on bad files
            raise ModelFolderError(
                str(merges_path), f"not a readable BPE merges file ({exc})"
            ) from exc
        tokenizer = Tokenizer(model)
        tokenizer.normalizer = normalizers.Sequence(
            [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
        )
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False),
            ]
        )
        tokenizer.decoder = decoders.ByteLevel()
        self._tokenizer = tokenizer
        for token in (BOS, EOS):
            if token not in vocab:
                raise ModelFolderError(str(vocab_path), f"has no {token} token")
        self.bos_id = vocab[BOS]
        self.eos_id = vocab[EOS]
        # SD 1.x pads with EOS; SD 2.x (OpenCLIP) pads with "!" (id 0), named in the folder.
        self.pad_id = vocab.get(pad_token, self.eos_id) if pad_token else self.eos_id
        self.vocab_size = len(vocab)
        self._expand: dict[int, list[int]] = {}

    def add_embedding(self, name: str, count: int) -> list[int]:
        """Add ``name`` as a new token that stands for ``count`` new ids; return those ids.

        Like diffusers' ``load_textual_inversion``: the ids follow the vocabulary in order.
        """
        first = self.vocab_size + sum(len(v) for v in self._expand.values())
        self._tokenizer.add_tokens([AddedToken(name, single_word=False, normalized=True)])
        token_id = self._tokenizer.token_to_id(name)
        ids = list(range(first, first + count))
        self._expand[token_id] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, without BOS/EOS."""
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        if not self._expand:
            return list(ids)
        return [i for token in ids for i in self._expand.get(token, [token])]

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids``, for error messages and debugging."""
        return str(self._tokenizer.decode(ids)).replace("</w>", " ").strip()
