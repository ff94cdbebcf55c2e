"""Text <-> token ids with the bundle's tokenizer.json, BOS handled explicitly.

The Llama-3 tokenizer.json that GuardReasoner ships (and GGUF-derived ones) do not always
add BOS on their own, while GuardReasoner was trained with it. So we always encode with
``add_special_tokens=False`` and prepend BOS ourselves when the manifest says so: one rule,
the same in the runtime and in export validation.
"""

from __future__ import annotations

from pathlib import Path

from guardcli.errors import ModelError


class TextCodec:
    def __init__(self, tokenizer_json: Path, *, bos_token_id: int | None, add_bos: bool) -> None:
        from tokenizers import Tokenizer

        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer_json))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception
            raise ModelError(f"{tokenizer_json}: cannot load tokenizer ({exc})") from exc
        self.bos_token_id = bos_token_id
        self.add_bos = add_bos and bos_token_id is not None

    def encode(self, text: str) -> list[int]:
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        return [self.bos_token_id, *ids] if self.add_bos else list(ids)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def stream(self) -> TextStream:
        return TextStream(self._tokenizer)


class TextStream:
    """Incremental detokenization: text pieces as tokens arrive, never a split UTF-8 char."""

    def __init__(self, tokenizer) -> None:  # noqa: ANN001 - tokenizers.Tokenizer
        from tokenizers.decoders import DecodeStream

        self._tokenizer = tokenizer
        self._decoder = DecodeStream(skip_special_tokens=True)
        self.text = ""

    def push(self, token: int) -> str:
        piece = self._decoder.step(self._tokenizer, token) or ""
        self.text += piece
        return piece
