"""SPEC -> MergeConfig: a frozen dataclass parsed from the CLI's `--merge` string at the boundary.

SPEC is `none` or `METHOD:BODY`, each method's forms kept with it (graphs/methods/registry.py):
    none                          no merging
    tome:r=16                     ToMe, constant r per layer (schedule=decreasing, r=4,8,8,16 lists,
                                  prop_attn=0|1, trace_source=0|1; graphs/methods/tome.py)
    drop:r=16 | drop:METHOD:...   token-drop oracle at another method's token counts (graphs/methods/drop.py)
    pitome:ratio=0.9              PiToMe (graphs/methods/pitome.py)
    diffrate:prune=...,merge=...  DiffRate (graphs/methods/diffrate.py)
    tomesd:ratio=0.5              tomesd on Stable Diffusion UNets (graphs/methods/tomesd.py)
    tdtm                          TDTM on Wan / LTX-Video transformers (graphs/methods/tdtm_attention.py)
BODY follows grammar.py: numbers are plain decimal digits 0-9 (no '1_0', no signs, no other
scripts' digits). A SpecError says what was wrong and lists every form (`spec_help`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..methods.method import MethodParams
from ..methods.registry import get_method, methods
from .grammar import SpecError


def spec_help() -> str:
    """Every method's SPEC forms on one line, for `--help` and error messages."""
    return " | ".join(m.grammar for m in methods().values())


def parse_spec(spec: str) -> tuple[str, MethodParams | None]:
    """'tome:r=16' -> ('tome', TomeParams(...)); 'none' or '' -> ('none', None)."""
    text = spec.strip()
    if text in ("", "none"):
        return "none", None
    name, _, body = text.partition(":")
    table = methods()
    if name not in table or name == "none" or not (body.strip() or table[name].bare):
        raise SpecError(f"unknown merge spec {spec!r}; allowed: {spec_help()}")
    try:
        return name, table[name].parse(spec, body)
    except SpecError as err:
        if err.list_forms:
            raise SpecError(f"{err}; allowed: {spec_help()}") from None
        raise


def describe_spec(name: str, params: MethodParams | None) -> str:
    if params is None:
        return "none"
    body = params.describe()
    return f"{name}:{body}" if body else name


@dataclass(frozen=True)
class MergeConfig:
    """A method name and its parsed params (None for `none`). A method's params read as the
    config's attributes too (`MergeConfig.parse('tome:r=16').r`)."""

    method: str = "none"
    params: MethodParams | None = None

    @classmethod
    def parse(cls, spec: str) -> MergeConfig:
        return cls(*parse_spec(spec))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        params = self.__dict__.get("params")
        if params is None or not hasattr(params, name):
            raise AttributeError(f"{self.method} merge config has no {name!r}")
        return getattr(params, name)

    @property
    def enabled(self) -> bool:
        return self.method != "none"

    @property
    def drops(self) -> bool:
        """The token-drop oracle (`drop:`), not a merge."""
        return self.method == "drop"

    @property
    def trace_source(self) -> bool:
        return bool(getattr(self.params, "trace_source", False))

    def oracle(self) -> MergeConfig | None:
        """The `drop:` twin at this config's token counts, for a method that has one."""
        if not get_method(self.method).oracle:
            return None
        return MergeConfig.parse("drop:" + (self.params.describe() if self.method == "tome" else self.describe()))

    def describe(self) -> str:
        """The SPEC that parses back to this config (options only where not the default)."""
        return describe_spec(self.method, self.params)

    def to_json(self) -> dict:
        return {"method": self.method, **(self.params.to_json() if self.params is not None else {})}
