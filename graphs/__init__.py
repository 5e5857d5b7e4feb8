"""tomobile.graphs: models and static-shape token-merging methods, in torch (Hugging Face transformers
for the encoder families, diffusers for the UNets); no export code.

    graphs/spec/     the --merge SPEC: grammar and MergeConfig
    graphs/methods/  merge methods (tome, pitome, diffrate, tomesd, tdtm, drop) and their static ops
    graphs/models/   the built-in models, Hugging Face patches and folders, the video DiT
    graphs/errors.py TomobileError, the base of every user error; graphs/numbers.py the number rules
"""

from .methods.registry import get_method
from .models.hf_models import apply_merge, merge_plan, remove_merge
from .spec.config import MergeConfig
from .spec.grammar import SpecError

__all__ = ["MergeConfig", "SpecError", "apply_merge", "remove_merge", "merge_plan", "get_method"]
