"""tomobile.graphs: static-shape token-merging ops and model patches (pure torch, no export code)."""

from .config import MergeConfig, SpecError
from .hf_models import apply_merge, merge_plan, remove_merge
from .methods import get_method, methods

__all__ = ["MergeConfig", "SpecError", "apply_merge", "remove_merge", "merge_plan", "get_method", "methods"]
