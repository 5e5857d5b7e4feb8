"""Merge methods and the static-shape ops they are made of.

registry.py lists the methods (none, tome, drop, pitome, diffrate, tomesd), each a `Method`
(method.py) in a module of its own; plan.py fixes the tokens per layer when a model is patched;
layers.py is the transformer layer every method's step plugs into. The ops: merge.py (bipartite
soft matching as comparisons, cumsum and one-hot matmuls), merge_indexed.py (its gather spelling
for ONNX Runtime), spatial_merge.py (tomesd's grid merge), tdtm.py (On-device Sora's temporal
merge), margins.py (how clear each merge decision is, for choosing validation inputs).
Nothing here knows a model family or an export format.
"""
