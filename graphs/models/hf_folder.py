"""Local Hugging Face model folders (config.json + weights): checked, loaded as the checkpoint
says, patched and wrapped for export.

What is exported is what the checkpoint holds. The class is the one config.json's `architectures`
names (a bare backbone when it names none), and the outputs are that class's: `logits` for a
classifier; `last_hidden_state` and `pooler_output` for a backbone (the latter only when the
checkpoint holds the pooler); `image_embeds` and `last_hidden_state` for a CLIP vision tower with
its projection, also when the folder is a full `CLIPModel` (the projection keeps the width of the
checkpoint's `projection_dim`); `sentence_embedding` beside `last_hidden_state` for a
sentence-transformers folder (its Pooling, Dense and Normalize modules: graphs/models/sentence_modules.py).

transformers' loading report is read, not hidden: weights the class needs that the checkpoint
lacks would be newly initialised, so the folder is refused; checkpoint weights the class does not
use are named in one warning line. A folder with no weights, a corrupt or truncated safetensors
file, or a config tomobile's static export cannot take (non-square images, a vocabulary without
word ids from 1000 up, fewer positions than the exported sequence length, relative position
embeddings) is refused before any model is built. Every refusal is a FolderError: one line.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

from torch import nn

from ..errors import TomobileError
from ..spec.config import MergeConfig
from .exportable import ModelBundle
from .hf_models import apply_merge
from .hf_wrappers import FIRST_WORD_ID, ImageModel, TextModel, config_json, preprocessor_json, single_model_bundle
from .sentence_modules import load_head

log = logging.getLogger(__name__)

TEXT_SEQ_LEN = 128
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
PREPROCESSOR_FILE = "preprocessor_config.json"
BACKBONE = ("last_hidden_state", "pooler_output")
# model_type -> {architecture: outputs}; the first architecture is taken when config.json names none.
ARCHITECTURES: dict[str, dict[str, tuple[str, ...]]] = {
    "vit": {"ViTModel": BACKBONE, "ViTForImageClassification": ("logits",)},
    "deit": {"DeiTModel": BACKBONE, "DeiTForImageClassification": ("logits",),
             "DeiTForImageClassificationWithTeacher": ("logits",)},
    "clip_vision_model": {"CLIPVisionModel": BACKBONE,
                          "CLIPVisionModelWithProjection": ("image_embeds", "last_hidden_state")},
    "clip": {"CLIPModel": ("image_embeds", "last_hidden_state")},  # its vision tower and projection
    "siglip_vision_model": {"SiglipVisionModel": BACKBONE},
    "dinov2": {"Dinov2Model": BACKBONE},
    "dinov2_with_registers": {"Dinov2WithRegistersModel": BACKBONE},
    "bert": {"BertModel": BACKBONE, "BertForSequenceClassification": ("logits",)},
}
# Checkpoint weights that a full CLIPModel holds beyond its vision tower: expected to stay unused.
_CLIP_TEXT_SIDE = ("text_model.", "text_projection.", "logit_scale")


class FolderError(TomobileError, ValueError):
    """A local model folder that cannot be exported; the message is one line."""


def load_local(folder: Path, config: MergeConfig, name: str | None = None,
               seq_len: int = TEXT_SEQ_LEN) -> ModelBundle:
    """A local Hugging Face model folder -> a one-part bundle, patched per `config`.

    `seq_len` is the static token count of BERT-style exports. Raises FolderError (or
    FileNotFoundError for a folder without config.json) on anything it cannot export faithfully.
    """
    raw = read_config(folder)
    model_type = raw.get("model_type")
    if model_type not in ARCHITECTURES:
        raise FolderError(f"model_type {model_type!r} in {folder / 'config.json'} is not supported; "
                          f"supported: {', '.join(ARCHITECTURES)}")
    architecture, outputs = pick_architecture(raw, model_type, folder)
    check_weight_files(folder)
    hf_config = _auto_config(folder)
    name = name or folder.name
    if model_type == "bert":
        return _text_bundle(folder, hf_config, architecture, outputs, config, name, seq_len)
    return _vision_bundle(folder, hf_config, model_type, architecture, outputs, config, name)


def read_config(folder: Path) -> dict:
    cfg_path = folder / "config.json"
    if not folder.is_dir() or not cfg_path.is_file():
        raise FileNotFoundError(f"{folder} is not a Hugging Face model folder: no config.json in it")
    try:
        raw = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as err:
        raise FolderError(f"{cfg_path} is unreadable or has no model_type: {_first_line(err)}") from None
    if not isinstance(raw, dict) or "model_type" not in raw:
        raise FolderError(f"{cfg_path} is unreadable or has no model_type")
    return raw


def pick_architecture(raw: dict, model_type: str, folder: Path) -> tuple[str, tuple[str, ...]]:
    """The class the checkpoint was saved from (config.json `architectures`) and its outputs."""
    known = ARCHITECTURES[model_type]
    named = raw.get("architectures") or [next(iter(known))]
    if not isinstance(named, list) or named[0] not in known:
        raise FolderError(f"architecture {named[0] if isinstance(named, list) else named!r} in "
                          f"{folder / 'config.json'} is not supported for {model_type}; supported: {', '.join(known)}")
    return named[0], known[named[0]]


def check_weight_files(folder: Path) -> None:
    """Weights are there, and every safetensors file is whole: its header parses and the tensors
    it describes end exactly where the file ends."""
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise FolderError(f"{folder} has config.json but no weights; expected one of: {', '.join(WEIGHT_FILES)}")
    for path in sorted(folder.glob("*.safetensors")):
        check_safetensors(path)


def check_safetensors(path: Path) -> None:
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            header_len = int.from_bytes(fh.read(8), "little")
            if size < 8 or header_len > size - 8:
                raise ValueError(f"a {header_len}-byte header does not fit in {size} bytes")
            header = json.loads(fh.read(header_len))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        raise FolderError(f"{path} is not a valid safetensors file (corrupt or truncated): {err}") from None
    if 8 + header_len + end != size:
        raise FolderError(f"{path} is truncated or corrupt: its header describes {8 + header_len + end} bytes, "
                          f"the file has {size}")


def _auto_config(folder: Path):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(folder)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise FolderError(f"{folder / 'config.json'}: transformers cannot read it: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def square(value, what: str, cfg_path: Path) -> int:
    """An int, or a pair of equal ints, as an int; anything else is refused."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise FolderError(f"{what} {list(value)} in {cfg_path} is not square; tomobile exports square "
                              f"images only (one size for height and width)")
        value = value[0]
    if not isinstance(value, int) or value <= 0:
        raise FolderError(f"{what} {value!r} in {cfg_path} is not a positive integer")
    return value


def _load(cls, folder: Path, architecture: str, **kwargs) -> tuple[nn.Module, list[str]]:
    """from_pretrained with transformers' loading report. Missing weights are returned (the caller
    decides); weights the class does not use are reported in one warning line."""
    try:
        model, info = cls.from_pretrained(folder, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, EOFError, pickle.UnpicklingError) as err:
        raise FolderError(f"{folder}: transformers could not load its weights as {architecture}: "
                          f"{_first_line(err)}") from None
    unused = sorted(k for k in info.get("unexpected_keys", ()) if not k.startswith(_CLIP_TEXT_SIDE))
    if unused:
        log.warning("%s: %d checkpoint weights are not part of %s and are not exported (%s)", folder, len(unused),
                    architecture, ", ".join(unused[:3]) + (", ..." if len(unused) > 3 else ""))
    return model.eval(), sorted(info.get("missing_keys", ()))


def _refuse_missing(missing: list[str], folder: Path, architecture: str) -> None:
    if missing:
        raise FolderError(f"{folder}: {len(missing)} weights of {architecture} are not in the checkpoint and would "
                          f"be newly initialised ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
                          f"tomobile exports only trained weights")


def _drop_untrained_pooler(model: nn.Module, missing: list[str], outputs: tuple[str, ...]) -> tuple[str, ...]:
    """A backbone saved without its pooler: export it without `pooler_output`."""
    if outputs == BACKBONE and missing and all(k.startswith("pooler.") for k in missing):
        model.pooler = None
        missing.clear()
        return ("last_hidden_state",)
    return outputs


def _vision_bundle(folder: Path, hf_config, model_type: str, architecture: str, outputs: tuple[str, ...],
                   config: MergeConfig, name: str) -> ModelBundle:
    import transformers

    cfg_path = folder / "config.json"
    exported = architecture
    if model_type == "clip":  # the vision tower, with the projection width the checkpoint has
        vision = hf_config.vision_config
        vision.projection_dim = hf_config.projection_dim
        hf_config, exported = vision, "CLIPVisionModelWithProjection"
    size = hf_config.image_size = square(hf_config.image_size, "image_size", cfg_path)
    hf_config.patch_size = square(hf_config.patch_size, "patch_size", cfg_path)
    model, missing = _load(getattr(transformers, exported), folder, architecture, config=hf_config)
    outputs = _drop_untrained_pooler(model, missing, outputs)
    _refuse_missing(missing, folder, architecture)
    apply_merge(model, config)
    family = "clip" if model_type.startswith("clip") else model_type
    preprocessor = folder / PREPROCESSOR_FILE
    generated = {"config.json": config_json(model.config, exported)}
    extra = {}
    if preprocessor.is_file():
        extra[PREPROCESSOR_FILE] = preprocessor
    else:
        generated[PREPROCESSOR_FILE] = preprocessor_json(family, size, hf_config.num_channels)
    wrapper = ImageModel(model, size, outputs, channels=hf_config.num_channels)
    return single_model_bundle(name, wrapper, config, extra_files=extra, generated_files=generated)


def _check_text_config(hf_config, cfg_path: Path, seq_len: int) -> None:
    if hf_config.vocab_size <= FIRST_WORD_ID:
        raise FolderError(f"vocab_size {hf_config.vocab_size} in {cfg_path} is too small: tomobile's test inputs "
                          f"use word ids from {FIRST_WORD_ID} up (below are padding and special tokens in BERT "
                          f"vocabularies); a vocabulary of more than {FIRST_WORD_ID} ids is needed")
    if hf_config.max_position_embeddings < seq_len:
        raise FolderError(f"max_position_embeddings {hf_config.max_position_embeddings} in {cfg_path} is below the "
                          f"exported sequence length {seq_len}; BERT-style exports take {seq_len} tokens")
    kind = getattr(hf_config, "position_embedding_type", "absolute")
    if kind != "absolute":
        raise FolderError(f"position_embedding_type {kind!r} in {cfg_path} is not supported; supported: absolute")


def _text_bundle(folder: Path, hf_config, architecture: str, outputs: tuple[str, ...], config: MergeConfig,
                 name: str, seq_len: int) -> ModelBundle:
    import transformers

    _check_text_config(hf_config, folder / "config.json", seq_len)
    head = load_head(folder) if architecture == "BertModel" else None
    model, missing = _load(getattr(transformers, architecture), folder, architecture, config=hf_config)
    if head is not None:  # the sentence model is token states + its head: the pooler is not part of it
        model.pooler = None
        missing[:] = [k for k in missing if not k.startswith("pooler.")]
        outputs = ("last_hidden_state",)
    outputs = _drop_untrained_pooler(model, missing, outputs)
    _refuse_missing(missing, folder, architecture)
    apply_merge(model, config, seq_len=seq_len)
    wrapper = TextModel(model, seq_len, hf_config.vocab_size, outputs, head)
    extra = tokenizer_files(folder)
    real = {}
    if "tokenizer.json" in extra or "vocab.txt" in extra:
        real["model"] = _real_text_inputs(folder, seq_len)
    return single_model_bundle(name, wrapper, config, extra_files=extra, real_inputs=real,
                               generated_files={"config.json": config_json(model.config, architecture)})


_SENTENCES = (
    "Token merging makes vision transformers faster without retraining.",
    "The phone runs the exported model with the same numbers as PyTorch.",
    "A red circle moves to the left across a black background.",
)


def tokenizer_files(folder: Path) -> dict[str, Path]:
    """The folder's tokenizer files; one that is there but not a regular file (a folder named
    vocab.txt) is a FolderError, not an IsADirectoryError from transformers."""
    found = {f: folder / f for f in TOKENIZER_FILES if (folder / f).exists()}
    for path in found.values():
        if not path.is_file():
            raise FolderError(f"{path} is not a regular file (a folder?); the tokenizer files "
                              f"({', '.join(TOKENIZER_FILES)}) must be files")
    return found


def _real_text_inputs(folder: Path, seq_len: int):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as err:  # transformers raises many types for a damaged tokenizer file
        files = ", ".join(str(p) for p in tokenizer_files(folder).values())
        raise FolderError(f"the tokenizer in {files} cannot be loaded: {_first_line(err)}") from None

    def real_inputs():
        enc = tokenizer(_SENTENCES[0], padding="max_length", truncation=True, max_length=seq_len, return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"]

    return real_inputs
