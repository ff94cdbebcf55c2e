"""Text <-> token ids with the bundle's tokenizer.json, BOS handled explicitly.

The Llama-3 tokenizer.json that GuardReasoner ships (and GGUF-derived ones) do not always
add BOS on their own, while GuardReasoner was trained with it. So we always encode with
``add_special_tokens=False`` and prepend BOS ourselves when the manifest says so: one rule,
the same in the runtime and in export validation.

Text that spells a special token (``<|eot_id|>``, ``<|begin_of_text|>``) is encoded as plain
text, never as that control token: the judged text is untrusted, and letting it inject
end-of-turn or begin-of-text markers into the guard's own input would let a prompt cut the
instruction short or fake a new conversation. (Hugging Face's default maps such strings to the
special ids; the GuardReasoner benchmarks never contain them, so parity is unaffected.)
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
        self._tokenizer.encode_special_tokens = True  # untrusted text: see the module docstring
        self.bos_token_id = bos_token_id
        self.add_bos = add_bos and bos_token_id is not None

    @classmethod
    def for_bundle(cls, bundle_dir: Path, manifest) -> TextCodec:  # noqa: ANN001 - Manifest
        """The codec a bundle's manifest prescribes (BOS id and whether to add it)."""
        return cls(
            Path(bundle_dir) / "tokenizer.json",
            bos_token_id=manifest.bos_token_id,
            add_bos=manifest.add_bos,
        )

    def encode(self, text: str) -> list[int]:
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        return [self.bos_token_id, *ids] if self.add_bos else list(ids)

    def pieces(self, text: str) -> list[int]:
        """Ids of text that continues a sequence (no BOS), e.g. forced answer tokens."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """[start, end) characters of each token of ``text``: where long-input windows cut."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)

    def head(self, text: str, tokens: int) -> str:
        """The start of ``text`` that its first ``tokens`` tokens cover, cut between characters.

        Truncation cuts here rather than at a proportional character count: tokens per
        character vary wildly (ASCII vs. emoji vs. CJK), so a proportional cut can remove far
        more or far less than asked. The offsets point into the original string, so the cut
        never splits a character or invents text the way decoding a token prefix can.
        """
        if tokens <= 0:
            return ""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        if tokens >= len(encoding.ids):
            return text
        return text[: encoding.offsets[tokens][0]]

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
        self._ids: list[int] = []
        self.text = ""

    def push(self, token: int) -> str:
        self._ids.append(token)
        piece = self._decoder.step(self._tokenizer, token) or ""
        self.text += piece
        return piece

    def flush(self) -> str:
        """What the stream still holds back once generation has ended, so the pieces add up
        to the final decoded text: the bytes of a character the budget cut in half (decoded
        as U+FFFD, as ``TextCodec.decode`` shows them), or a literal U+FFFD the stream is
        still waiting to complete.
        """
        full = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        rest = full[len(self.text) :] if full.startswith(self.text) else ""
        self.text += rest
        return rest
