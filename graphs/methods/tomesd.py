"""tomesd (Token Merging for Stable Diffusion) on diffusers UNets, as a static, reversible patch.

tomesd (dbolya/tomesd, `apply_patch`) wraps every `BasicTransformerBlock`: before each of the
blocks at a resolution it merges (downsample <= max_downsample), it picks one destination token per
sy x sx cell, merges the r = int(S * ratio) source tokens most similar to a destination (cosine of
the block's input hidden states) into it by a plain mean, runs self-attention (and optionally
cross-attention and the MLP) on the S - r tokens and copies each result back to every token it
holds. Its merge uses `argsort` and `scatter_reduce(mean)`, which ONNX, Core ML and ExecuTorch do
not export; here the same assignment is graphs/methods/spatial_merge.py's, in one of its two spellings
(`SpatialOps`: one-hot matmuls, or TopK + scatter-add + gather), chosen per traced graph by
`spatial_ops` (from measurements: docs/stable_diffusion.md) when `apply_tomesd` patches; its primitive
ops are spelled by the `MergeOps` each patched block holds (OPS_ATTR), as every merge's are.

What stays static: every block's grid (h, w), r and destination set are Python values fixed at
patch time for one latent size and batch. tomesd's `use_rand=True` draws a fresh destination per
cell at every call; here the draw is made once, when the model is patched, from `seed` with the
same `torch.randint` calls in the same block order, so an exported graph equals tomesd given the
same generator (its first forward after seeding). As in tomesd, an odd batch never randomises:
batch 1 is deterministic (top-left destinations) whatever `use_rand` says; CFG's batch 2 draws.

SPEC: `tomesd:ratio=0.5[,max_downsample=1|2|4|8][,sx=2][,sy=2][,use_rand=0|1][,seed=0]
[,merge_attn=0|1][,merge_crossattn=0|1][,merge_mlp=0|1]` (defaults as tomesd's, except use_rand=0).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from ..spec.grammar import SpecError
from .merge import ARITHMETIC
from .merge_indexed import IndexedOps
from .method import Method
from .ops import OPS_ATTR, MergeOps, merge_ops_of
from .spatial_merge import SpatialOps, grid_destinations, merge_fns

METHOD = "tomesd"
SPEC_HELP = ("tomesd:ratio=R[,max_downsample=1|2|4|8][,sx=N][,sy=N][,use_rand=0|1][,seed=N][,merge_attn=0|1]"
             "[,merge_crossattn=0|1][,merge_mlp=0|1] (diffusers UNets; R in [0, 1); sx, sy within every merging "
             "block's grid; seed 0..2^64-1, drawn only with use_rand=1 at an even batch: --cfg)")
_FLAGS = ("use_rand", "merge_attn", "merge_crossattn", "merge_mlp")
_INTS = ("max_downsample", "sx", "sy", "seed")
_PATCH_ATTR = "_tomobile_tomesd"
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes 0..2^64-1


@dataclass(frozen=True)
class TomesdConfig:
    """tomesd's `apply_patch` arguments; `seed` fixes the use_rand draw (tomesd's generator)."""

    ratio: float = 0.5
    max_downsample: int = 1
    sx: int = 2
    sy: int = 2
    use_rand: bool = False
    seed: int = 0
    merge_attn: bool = True
    merge_crossattn: bool = False
    merge_mlp: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise SpecError(f"tomesd ratio {self.ratio} must lie in [0, 1)")
        if self.max_downsample not in (1, 2, 4, 8):
            raise SpecError(f"tomesd max_downsample {self.max_downsample} must be 1, 2, 4 or 8")
        if self.sx < 1 or self.sy < 1:
            raise SpecError("tomesd sx and sy must be >= 1")
        if self.seed > MAX_SEED:
            raise SpecError(f"tomesd seed {self.seed} is out of range; seeds are 0..2^64-1 (torch's generator state)")

    @classmethod
    def parse(cls, spec: str) -> TomesdConfig:
        method, _, body = spec.strip().partition(":")
        if method != METHOD or not body:
            raise SpecError(f"unknown merge spec {spec!r}; allowed: {SPEC_HELP}")
        values: dict = {}
        for item in body.split(","):
            key, eq, val = (t.strip() for t in item.partition("="))
            if not eq or key not in ("ratio", *_INTS, *_FLAGS):
                raise SpecError(f"bad item {item!r} in merge spec {spec!r}; allowed: {SPEC_HELP}")
            if key in values:
                raise SpecError(f"{key} is given twice in merge spec {spec!r}; give each option once")
            values[key] = _value(spec, key, val)
        if "ratio" not in values:
            raise SpecError(f"merge spec {spec!r} needs ratio=R; allowed: {SPEC_HELP}")
        return cls(**values)

    def describe(self) -> str:
        """The SPEC body that parses back to this config (options only where not the default)."""
        default = TomesdConfig()
        items = [f"ratio={self.ratio:g}"] + [
            f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in asdict(self).items()
            if k != "ratio" and v != getattr(default, k)]
        return ",".join(items)

    def to_json(self) -> dict:
        return {"method": METHOD, **asdict(self)}


def _value(spec: str, key: str, text: str) -> float | int | bool:
    if key == "ratio":
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not text.replace(".", "", 1).isdigit():
            raise SpecError(f"ratio {text!r} in {spec!r} is not a decimal number in [0, 1)")
        return value
    if not (text.isascii() and text.isdigit()):
        raise SpecError(f"{key} value {text!r} in {spec!r} must be a plain non-negative integer")
    if key in _FLAGS:
        if text not in ("0", "1"):
            raise SpecError(f"flag {key}={text} in {spec!r} must be 0 or 1")
        return text == "1"
    return int(text)


@dataclass(frozen=True)
class BlockPlan:
    """One BasicTransformerBlock's static merge: its h x w token grid, r and destination indices."""

    h: int
    w: int
    r: int
    dst: tuple[int, ...]

    def to_json(self) -> dict:
        return {"h": self.h, "w": self.w, "r": self.r, "destinations": len(self.dst)}


def block_plans(tokens: list[int], latent_hw: tuple[int, int], batch: int, config: TomesdConfig) -> list[BlockPlan | None]:
    """Per block (in call order, given its token count): tomesd's `compute_merge` decisions, or None
    where tomesd does nothing there (too downsampled, or r = 0). The use_rand draws come from one
    generator seeded with `config.seed`, one `randint` per merging block, in tomesd's call order."""
    height, width = latent_hw
    generator = torch.Generator().manual_seed(config.seed)
    use_rand = config.use_rand and batch % 2 == 0  # tomesd: an odd batch never randomises
    plans: list[BlockPlan | None] = []
    for n in tokens:
        downsample = _downsample(n, latent_hw)
        h, w = int(math.ceil(height / downsample)), int(math.ceil(width / downsample))
        r = int(n * config.ratio)
        if downsample > config.max_downsample or r <= 0:
            plans.append(None)
            continue
        if h * w != n:
            raise SpecError(f"tomesd cannot place {n} tokens on the {h}x{w} grid it derives from the "
                            f"{height}x{width} latent; choose a latent size the UNet halves evenly")
        hsy, wsx = h // config.sy, w // config.sx
        if not hsy or not wsx:  # no whole sy x sx cell: no destination, nothing to merge into
            raise SpecError(f"tomesd sx={config.sx}, sy={config.sy} do not fit the {h}x{w} token grid of a block it "
                            f"merges (downsample {downsample} of the {height}x{width} latent); give sx <= {w} and "
                            f"sy <= {h}, or a lower max_downsample")
        if use_rand:
            offsets = torch.randint(config.sy * config.sx, size=(hsy, wsx, 1), generator=generator).flatten().tolist()
        else:
            offsets = [0] * (hsy * wsx)
        dst = grid_destinations(h, w, config.sy, config.sx, offsets)
        plans.append(BlockPlan(h, w, min(r, n - len(dst)), tuple(dst)))
    return plans


def _downsample(tokens: int, latent_hw: tuple[int, int]) -> int:
    """tomesd's downsample of a block from its token count: ceil(sqrt(H * W // tokens))."""
    return int(math.ceil(math.sqrt(latent_hw[0] * latent_hw[1] // tokens)))


def unused_options(config: TomesdConfig, batch: int) -> list[str]:
    """The options of `config` that do nothing at this batch, each said in a few words (the CLI
    prints them in one note line): seed without use_rand, use_rand at an odd batch (tomesd never
    randomises one)."""
    unused = []
    if config.seed != TomesdConfig.seed and not config.use_rand:
        unused.append(f"seed={config.seed} needs use_rand=1 (destinations are each cell's top-left otherwise)")
    if config.use_rand and batch % 2:
        unused.append(f"use_rand=1 at batch {batch}: an odd batch never randomises, as in tomesd (--cfg exports batch 2)")
    return unused


def transformer_blocks(unet: nn.Module) -> list[nn.Module]:
    """The UNet's BasicTransformerBlocks (by class name, as tomesd finds them), in module order."""
    return [m for m in unet.modules() if any(c.__name__ == "BasicTransformerBlock" for c in type(m).__mro__)]


def block_tokens(unet: nn.Module, inputs: tuple[torch.Tensor, ...]) -> dict[nn.Module, int]:
    """Token count entering every BasicTransformerBlock, in call order, from one forward with fake
    tensors (shapes only: no arithmetic, so an SD-1.5-size UNet costs nothing)."""
    seen: dict[nn.Module, int] = {}

    def record(module: nn.Module, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]  # (B, S, C)
        seen.setdefault(module, hidden.shape[1])

    hooks = [b.register_forward_pre_hook(record, with_kwargs=True) for b in transformer_blocks(unet)]
    try:
        with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True) as mode:
            unet(*(mode.from_tensor(x) for x in inputs))
    finally:
        for hook in hooks:
            hook.remove()
    return seen


# Token counts from which ExecuTorch's graph takes the indexed spatial merge (portable TopK,
# scatter-add and gather kernels between XNNPACK partitions) over the one-hot matmuls: measured
# (scripts/spatial_spellings.py, CPU time at 1 thread, merge + copy-back alone) at 0.29x / 0.47x
# the one-hot time at S = 4096 (widths 32 / 320), 0.85x / 1.19x at 1024, 2.05x / 1.93x at 256.
EXECUTORCH_INDEXED_FROM = 4096


def spatial_ops(ops: MergeOps, tokens: int, fmt: str | None = None) -> SpatialOps:
    """The spatial merge's form in the graph for format `fmt`, traced with merge spelling `ops`
    (INDEXED for ONNX Runtime, ARITHMETIC for the others), at `tokens` tokens per block.

    From measurements (docs/stable_diffusion.md): ONNX Runtime gathers and scatters cheaply at every
    size measured (0.24x-1.00x the one-hot time); ExecuTorch from EXECUTORCH_INDEXED_FROM tokens on;
    Core ML and Core AI keep the one-hot form, which both convert; the indexed one converts with
    neither pinned converter (scripts/spatial_convert_probe.py: coremltools 9.0 refuses the slot
    marking's scatter, coreai-torch 0.4.3 has no scatter_add lowering)."""
    if isinstance(ops, IndexedOps) or (fmt == "executorch" and tokens >= EXECUTORCH_INDEXED_FROM):
        return SpatialOps.INDEXED
    return SpatialOps.ONE_HOT


def apply_tomesd(unet: nn.Module, config: TomesdConfig, inputs: tuple[torch.Tensor, ...],
                 drop: bool = False, ops: MergeOps = ARITHMETIC, fmt: str | None = None
                 ) -> list[BlockPlan | None]:
    """Patch every BasicTransformerBlock of a diffusers UNet for inputs shaped like `inputs`
    (sample (B, 4, H, W), timestep, encoder_hidden_states); returns the plan per block.

    Each merging block gets an instance `forward` (remove_tomesd deletes it); blocks that do not
    merge are left untouched, so ratio=0 is the unpatched UNet bit for bit. `drop=True` is the
    token-drop oracle (`drop:tomesd:...`): the same blocks and token counts with no merge work.
    `ops`, `fmt`: the merge spelling and the format of the graph this patch is for (eager: the
    defaults); each block's spatial form is `spatial_ops(ops, its tokens, fmt)`, fixed here, and the
    block holds `ops` (OPS_ATTR), which spells the form's primitives."""
    remove_tomesd(unet)
    blocks = transformer_blocks(unet)
    for block in blocks:
        _check_block(block)
    tokens = block_tokens(unet, inputs)
    order = list(tokens)  # call order
    sample = inputs[0]
    latent_hw = tuple(sample.shape[2:])
    plans = block_plans([tokens[b] for b in order], latent_hw, sample.shape[0], config)
    if config.ratio > 0 and all(p is None for p in plans):
        levels = sorted({_downsample(tokens[b], latent_hw) for b in order})
        raise SpecError(f"tomesd:{config.describe()} merges no token in this UNet: its attention blocks sit at downsample "
                        f"{', '.join(map(str, levels)) or 'nowhere'}, and max_downsample={config.max_downsample} "
                        "merges only at those up to it, with r = int(tokens * ratio) > 0; raise max_downsample or ratio")
    for block, plan in zip(order, plans, strict=True):
        if plan is not None and (config.merge_attn or config.merge_crossattn or config.merge_mlp):
            block.forward = functools.partial(tomesd_block_forward, block, plan, config, drop,
                                              spatial_ops(ops, plan.h * plan.w, fmt))
            setattr(block, _PATCH_ATTR, plan)
            setattr(block, OPS_ATTR, ops)
    return plans


def remove_tomesd(unet: nn.Module) -> nn.Module:
    for block in transformer_blocks(unet):
        if hasattr(block, _PATCH_ATTR):
            del block.forward
            delattr(block, _PATCH_ATTR)
            delattr(block, OPS_ATTR)
    return unet


def _check_block(block: nn.Module) -> None:
    """The patched forward follows diffusers' plain LayerNorm block (Stable Diffusion 1.x / 2.x)."""
    norm_type = getattr(block, "norm_type", None)
    if norm_type != "layer_norm" or block.pos_embed is not None or block._chunk_size is not None:
        raise SpecError(f"tomesd here supports diffusers BasicTransformerBlocks with norm_type 'layer_norm', no "
                        f"positional embedding and no feed-forward chunking (Stable Diffusion 1.x/2.x); this UNet "
                        f"has norm_type {norm_type!r}")


def tomesd_block_forward(block: nn.Module, plan: BlockPlan, config: TomesdConfig, drop: bool, spatial: SpatialOps,
                         hidden_states: torch.Tensor,
                         attention_mask: torch.Tensor | None = None, encoder_hidden_states: torch.Tensor | None = None,
                         encoder_attention_mask: torch.Tensor | None = None, timestep=None,
                         cross_attention_kwargs: dict | None = None, class_labels=None,
                         added_cond_kwargs=None) -> torch.Tensor:
    """diffusers' BasicTransformerBlock.forward (layer_norm) with tomesd's merge: the slots from the
    block's input hidden_states (B, S, C) (in form `spatial`, spelled by the block's ops), merge by
    mean before each chosen sub-layer, unmerge (copy back) after it, residuals at full length.

    `drop`: the oracle. Each chosen sub-layer runs on the first S - r tokens and the last r get a
    zero update (their residual only): the same shapes, no similarity, assignment or copy-back."""
    fns = None if drop else merge_fns(hidden_states, list(plan.dst), plan.r, spatial,
                                      merge_ops_of(block))  # (B, S, C) <-> (B, S - r, C)

    def around(enabled: bool, layer, x: torch.Tensor, **kwargs) -> torch.Tensor:
        if not enabled:
            return layer(x, **kwargs)  # (B, S, C)
        if fns is None:
            kept = layer(x[:, : x.shape[1] - plan.r], **kwargs)  # (B, S - r, C)
            return nn.functional.pad(kept, (0, 0, 0, plan.r))  # (B, S, C): zero rows appended
        merge, unmerge = fns
        return unmerge(layer(merge(x), **kwargs))  # (B, S, C)

    kwargs = dict(cross_attention_kwargs or {})
    hidden_states = around(config.merge_attn, block.attn1, block.norm1(hidden_states), attention_mask=attention_mask,
                           encoder_hidden_states=encoder_hidden_states if block.only_cross_attention else None,
                           **kwargs) + hidden_states
    if block.attn2 is not None:
        hidden_states = around(config.merge_crossattn, block.attn2, block.norm2(hidden_states),
                               encoder_hidden_states=encoder_hidden_states, attention_mask=encoder_attention_mask,
                               **kwargs) + hidden_states
    return around(config.merge_mlp, block.ff, block.norm3(hidden_states)) + hidden_states


def _encoders_only(*args) -> None:
    """tomesd's merge lives in diffusers' BasicTransformerBlock (apply_tomesd), not in encoder layers."""
    raise SpecError("tomesd: merges Stable Diffusion UNets (sd-unet-tiny, sd15-unet, a local diffusers folder), "
                    "not transformer encoders")


TOMESD = Method(
    name=METHOD, summary="tomesd (dbolya/tomesd): spatial merge around diffusers UNets' self-attention, "
                         "equal to the tomesd package; Stable Diffusion UNets only",
    grammar=SPEC_HELP, parse=lambda spec, body: TomesdConfig.parse(spec), plan=_encoders_only,
    layer=_encoders_only)  # its drop: twin (`drop:tomesd:...`) is apply_tomesd(drop=True)
