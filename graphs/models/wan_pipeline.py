"""A diffusers WanPipeline folder as one exportable bundle: the whole pipeline on the phone path.

    text_encoder      graphs/models/wan_text.WanTextEncoder: input_ids, attention_mask (1, L) -> prompt_embeds
    transformer       the Wan transformer at the static latent shape (graphs/models/wan.py), and with
    transformer_tdtm  `--merge tdtm` its TDTM twin on the same weights (graphs/methods/tdtm_attention.py)
    vae_decoder       graphs/models/wan_vae.WanVaeDecoder: latents (1, z, F, h, w) -> frames (1, N, H, W, 3)

The export folder also gets the tokenizer's files (tokenizer/), the scheduler's config
(scheduler/scheduler_config.json) and the transformer's config.json in diffusers' layout, and the
manifest's `pipeline` entry says what a run needs: the source folder (where `generate --runtime
eager` reloads the parts from), the parts, the scheduler's class and shift,
WanPipeline's default guidance and step count, the text length, the latent shape and the VAE's
latents_mean / latents_std (the decoder applies them; they are recorded for ports that decode
another way).

Every part the folder's model_index.json names must be there and fit the others (the text
encoder's width is the transformer's text_dim, the VAE's z_dim its channels, the tokenizer's ids
within the encoder's vocabulary); anything else is refused in one line before a weight is read.
The scheduler's class and settings are checked by the caller (runtime/flow_schedule.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import InputError
from ..spec.config import MergeConfig
from ..spec.grammar import SpecError
from .exportable import ModelBundle
from .hf_folder import FolderError
from .video_folder import load_video_folder, video_source
from .video_transformers import MERGED, PLAIN, read_json
from .wan_text import WanTextEncoder
from .wan_vae import WanVaeDecoder

PIPELINE_CLASS = "WanPipeline"
PIPELINE_OPTIONS = ("size", "frames", "tdtm_odd", "text_length")
SCHEDULER_FILE = "scheduler/scheduler_config.json"
TEXT_LENGTH = 512  # WanPipeline's max_sequence_length
GUIDANCE, STEPS = 5.0, 50  # WanPipeline.__call__'s guidance_scale and num_inference_steps
# part folder -> the file that must be in it
FOLDERS = {"text_encoder": "config.json", "tokenizer": "tokenizer_config.json", "transformer": "config.json",
           "vae": "config.json", "scheduler": "scheduler_config.json"}


class PipelineFolderError(InputError):
    """A WanPipeline folder with a missing or mismatched part: one line, exit code 2."""


def wan_pipeline_folder(folder: Path) -> bool:
    """Whether `folder` is a diffusers WanPipeline folder (model_index.json names the class)."""
    return (read_json(folder / "model_index.json") or {}).get("_class_name") == PIPELINE_CLASS


def scheduler_config(folder: Path) -> dict:
    """The pipeline's scheduler_config.json (checked by the caller)."""
    return read_json(folder / SCHEDULER_FILE) or {}


def check_parts(folder: Path) -> tuple[dict, dict]:
    """The text encoder's and the VAE's configs, once every part is there and the parts fit the
    transformer; a one-line PipelineFolderError otherwise."""
    missing = [f"{part}/{name}" for part, name in FOLDERS.items() if not (folder / part / name).is_file()]
    if missing:
        raise PipelineFolderError(f"{folder} is a {PIPELINE_CLASS} folder without {', '.join(missing)}; tomobile "
                                  f"exports the whole pipeline: {', '.join(FOLDERS)}")
    text, vae = read_json(folder / "text_encoder" / "config.json"), read_json(folder / "vae" / "config.json")
    transformer = read_json(folder / "transformer" / "config.json")
    if (text or {}).get("model_type") != "umt5":
        raise PipelineFolderError(f"{folder}/text_encoder is a {(text or {}).get('model_type')!r} model; "
                                  f"{PIPELINE_CLASS} takes a UMT5 encoder (model_type umt5)")
    if (vae or {}).get("_class_name") != "AutoencoderKLWan":
        raise PipelineFolderError(f"{folder}/vae is a {(vae or {}).get('_class_name')!r}; {PIPELINE_CLASS} takes an "
                                  "AutoencoderKLWan")
    if text.get("d_model") != transformer.get("text_dim"):
        raise PipelineFolderError(f"{folder}: the text encoder's width {text.get('d_model')} is not the transformer's "
                                  f"text_dim {transformer.get('text_dim')}; the parts come from different models")
    z = vae.get("z_dim", 16)
    if z != transformer.get("in_channels") or z != transformer.get("out_channels"):
        raise PipelineFolderError(f"{folder}: the VAE's z_dim {z} is not the transformer's in/out channels "
                                  f"{transformer.get('in_channels')}/{transformer.get('out_channels')}; the parts come "
                                  "from different models")
    return text, vae


def load_wan_pipeline(folder: Path, config: MergeConfig, size: str | None = None, frames: int | None = None,
                      tdtm_odd: str | None = None, text_length: int | None = None) -> ModelBundle:
    """The whole WanPipeline in `folder` at `size` x `frames` with prompts of `text_length` tokens."""
    if video_source(folder) is None:  # raises for a pipeline without (or with another) transformer
        raise PipelineFolderError(f"{folder} is no {PIPELINE_CLASS} folder")
    if config.drops:
        raise SpecError(f"--merge {config.describe()} is bench's speed baseline for a video transformer (its frames "
                        f"are not merged but dropped); a WanPipeline export takes none or tdtm")
    text_config, vae_config = check_parts(folder)
    length = int(text_length or TEXT_LENGTH)
    bundle = load_video_folder(folder, config, size, frames, tdtm_odd, text_tokens=length)
    tokenizer = _load(_tokenizer, folder / "tokenizer")
    vocab = text_config.get("vocab_size")
    if not isinstance(vocab, int) or len(tokenizer) > vocab:
        raise PipelineFolderError(f"{folder}: the tokenizer has {len(tokenizer)} ids and the text encoder's vocabulary "
                                  f"{vocab}; the parts come from different models")
    transformer_spec = bundle.manifest["pipeline"]
    latent = (1, int(vae_config.get("z_dim", 16)), *transformer_spec["latent"])
    encoder = _load(_text_encoder, folder / "text_encoder")
    vae = _load(_vae, folder / "vae")
    parts = {"text_encoder": WanTextEncoder(encoder, length).eval(), **bundle.parts,
             "vae_decoder": WanVaeDecoder(vae, latent[2:]).eval()}
    scheduler = scheduler_config(folder)
    manifest = {
        **bundle.manifest,
        "pipeline": {
            "kind": "wan-pipeline", "class": PIPELINE_CLASS, "source": str(folder.resolve()),
            "parts": {"text_encoder": "text_encoder", "transformer": PLAIN,
                      **({"transformer_tdtm": MERGED} if MERGED in bundle.parts else {}), "vae_decoder": "vae_decoder"},
            "tokenizer": "tokenizer", "scheduler": {"class": scheduler.get("_class_name"), "config": SCHEDULER_FILE,
                                                    "shift": _shift(scheduler)},
            "guidance": GUIDANCE, "steps": STEPS, "negative_prompt": "", "text_tokens": length,
            "latent_shape": list(latent), "height": transformer_spec["height"], "width": transformer_spec["width"],
            "frames": transformer_spec["frames"], "output": "frames (1, frames, height, width, 3) in [0, 1]",
            "latents_mean": [float(v) for v in vae.config.latents_mean],
            "latents_std": [float(v) for v in vae.config.latents_std],
            "transformer": transformer_spec,
        },
    }
    files = {**bundle.generated_files, SCHEDULER_FILE: json.dumps(scheduler, indent=2, sort_keys=True) + "\n"}
    extra = {f"tokenizer/{f.name}": f for f in sorted((folder / "tokenizer").iterdir()) if f.is_file()}
    return ModelBundle(folder.resolve().name, parts, extra_files=extra, manifest=manifest, generated_files=files,
                       splitter=bundle.splitter)  # `--split blocks`: the transformer as parts (wan_parts.py)


def _shift(scheduler: dict) -> float:
    """The schedule's shift: UniPC's flow_shift, Euler's shift (1.0 where unset, as diffusers)."""
    key = "flow_shift" if scheduler.get("_class_name") == "UniPCMultistepScheduler" else "shift"
    return float(scheduler.get(key) or 1.0)


def _load(loader, folder: Path):
    """A part loaded from its folder (fp32, safetensors only); a load failure is one line."""
    try:
        return loader(folder)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FolderError(f"{folder} cannot be loaded: {first}") from None


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def _text_encoder(folder: Path) -> torch.nn.Module:
    from transformers import UMT5EncoderModel

    return UMT5EncoderModel.from_pretrained(str(folder), dtype=torch.float32, use_safetensors=True).eval()


def _vae(folder: Path) -> torch.nn.Module:
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan.from_pretrained(str(folder), torch_dtype=torch.float32, use_safetensors=True).eval()

