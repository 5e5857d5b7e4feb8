"""The modules of a sentence-transformers folder after the transformer, as one exportable head.

`modules.json` lists the modules in order: the Transformer (the BERT model tomobile loads), then
what turns its token states into `sentence_embedding`. Supported, as sentence-transformers
computes them: Pooling with any of the modes cls, max, mean, mean_sqrt_len_tokens (several modes
are concatenated in the order the config gives them), Dense (a Linear with its activation), Normalize (L2). Any other
module, or a Pooling option that changes the result (weightedmean, lasttoken, include_prompt
false), is refused in one line: exporting without it would give other numbers than the model.

Static-shape spellings: cls is token 0 (BERT tokenizers pad on the right, so the first real token
is token 0), max masks padding with the dtype's lowest finite value instead of -inf.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ..errors import InputError

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens")
_LEGACY_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
_ACTIVATIONS = {"Tanh": nn.Tanh, "Identity": nn.Identity, "ReLU": nn.ReLU, "Sigmoid": nn.Sigmoid, "GELU": nn.GELU}


class SentenceModuleError(InputError):
    """A sentence-transformers module tomobile cannot export faithfully: one line."""


class Pooling(nn.Module):
    """token states (1, L, C), mask (1, L) -> (1, len(modes) * C)."""

    def __init__(self, modes: tuple[str, ...]) -> None:
        super().__init__()
        self.modes = modes

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(tokens.dtype).unsqueeze(-1)  # (1, L, 1)
        count = m.sum(dim=1).clamp_min(1e-9)  # (1, 1)
        pooled = []
        for mode in self.modes:
            if mode == "cls":
                pooled.append(tokens[:, 0])  # (1, C)
            elif mode == "max":
                low = torch.finfo(tokens.dtype).min
                pooled.append((tokens * m + (1 - m) * low).max(dim=1).values)  # (1, C)
            else:
                total = (tokens * m).sum(dim=1)  # (1, C)
                pooled.append(total / (count if mode == "mean" else count.sqrt()))
        return torch.cat(pooled, dim=-1)


class Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # F.normalize's eps


class SentenceHead(nn.Module):
    """Pooling, then the Dense and Normalize modules in the folder's order."""

    def __init__(self, pooling: Pooling, after: list[nn.Module]) -> None:
        super().__init__()
        self.pooling = pooling
        self.after = nn.ModuleList(after)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.pooling(tokens, mask)
        for module in self.after:
            x = module(x)
        return x


def load_head(folder: Path) -> SentenceHead | None:
    """The folder's head after the transformer, or None when it has no modules.json (a plain BERT)."""
    modules_path = folder / "modules.json"
    if not modules_path.is_file():
        return None
    try:
        modules = json.loads(modules_path.read_text())
        entries = [(m["type"].rsplit(".", 1)[-1], folder / m.get("path", "")) for m in modules]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise SentenceModuleError(f"{modules_path} is unreadable: {err}") from None
    pooling, after = None, []
    for kind, path in entries[1:]:  # entries[0] is the Transformer
        if kind == "Pooling" and pooling is None and not after:
            pooling = Pooling(_pooling_modes(path / "config.json"))
        elif kind == "Dense" and pooling is not None:
            after.append(_dense(path))
        elif kind == "Normalize" and pooling is not None:
            after.append(Normalize())
        else:
            raise SentenceModuleError(f"{modules_path}: module {kind} (at {path.name or '.'}) is not supported "
                                      "there; tomobile exports Transformer, Pooling, then Dense and Normalize")
    if entries and entries[0][0] != "Transformer":
        raise SentenceModuleError(f"{modules_path}: the first module is {entries[0][0]}, not Transformer")
    if pooling is None:
        raise SentenceModuleError(f"{modules_path} lists no Pooling module; tomobile exports sentence models with one")
    return SentenceHead(pooling, after)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SentenceModuleError(f"{path} is unreadable: {err}") from None


def _pooling_modes(path: Path) -> tuple[str, ...]:
    cfg = _read_json(path)
    if "pooling_mode" in cfg:
        given = cfg["pooling_mode"]
        modes = (given,) if isinstance(given, str) else tuple(given)
    else:
        modes = tuple(mode for key, mode in _LEGACY_KEYS.items() if cfg.get(key)) or ("mean",)
    bad = [m for m in modes if m not in POOLING_MODES]
    if bad:
        raise SentenceModuleError(f"pooling mode {bad[0]!r} in {path} is not supported; supported: "
                                  f"{', '.join(POOLING_MODES)}")
    if cfg.get("include_prompt") is False:
        raise SentenceModuleError(f"include_prompt false in {path} is not supported (prompts are not exported)")
    return modes  # concatenated in the order given (the legacy keys' order: cls, max, mean, mean_sqrt_len)


def _dense(path: Path) -> nn.Module:
    cfg = _read_json(path / "config.json")
    act_name = str(cfg.get("activation_function", "torch.nn.modules.activation.Tanh")).rsplit(".", 1)[-1]
    if act_name not in _ACTIVATIONS or cfg.get("use_residual"):
        raise SentenceModuleError(f"Dense in {path}: activation {act_name} (residual {bool(cfg.get('use_residual'))}) "
                                  f"is not supported; supported: {', '.join(_ACTIVATIONS)} without residual")
    try:
        linear = nn.Linear(int(cfg["in_features"]), int(cfg["out_features"]), bias=bool(cfg.get("bias", True)))
    except (KeyError, TypeError, ValueError) as err:
        raise SentenceModuleError(f"Dense config {path / 'config.json'} lacks in/out features: {err}") from None
    state = _weights(path)
    try:
        linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()})
    except RuntimeError as err:
        raise SentenceModuleError(f"Dense weights in {path} do not fit its config: {str(err).splitlines()[0]}") from None
    return nn.Sequential(linear, _ACTIVATIONS[act_name]())


def _weights(path: Path) -> dict[str, torch.Tensor]:
    if (path / "model.safetensors").is_file():
        return load_file(str(path / "model.safetensors"))
    if (path / "pytorch_model.bin").is_file():
        return torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise SentenceModuleError(f"Dense in {path} has no weights (model.safetensors or pytorch_model.bin)")
