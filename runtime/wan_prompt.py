"""WanPipeline's prompt handling on the host: cleaning and tokenizing at a fixed text length.

WanPipeline cleans a prompt (HTML entities unescaped twice, whitespace runs collapsed, ends
stripped; also ftfy's fix_text when ftfy is installed, which tomobile does not install) and
tokenizes it padded to `max_sequence_length` with the tokenizer's special tokens (UMT5 appends
</s>). The text encoder (graphs/models/wan_text.py) then zeroes the states past the prompt's tokens.
WanPipeline truncates a longer prompt silently; `tokenize` refuses it instead, in one line.
"""

from __future__ import annotations

import html
import re

import numpy as np

from ..graphs.errors import InputError


class PromptTooLong(InputError):
    """A prompt with more tokens than the exported text length: one line, exit code 2."""


def prompt_clean(text: str) -> str:
    """WanPipeline's prompt_clean without ftfy: unescape HTML twice, collapse whitespace, strip."""
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def tokenize(tokenizer, prompt: str, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) (1, length) int64 of the cleaned prompt, as WanPipeline's
    tokenizer call; a prompt over `length` tokens (special tokens included) is refused."""
    text = prompt_clean(prompt)
    full = tokenizer([text], add_special_tokens=True, return_attention_mask=True)["input_ids"][0]
    if len(full) > length:
        raise PromptTooLong(f"the prompt has {len(full)} tokens (with the end token) and the text length is {length}; "
                            f"shorten the prompt to at most {length} tokens")
    enc = tokenizer([text], padding="max_length", max_length=length, truncation=True, add_special_tokens=True,
                    return_attention_mask=True, return_tensors="np")
    return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
