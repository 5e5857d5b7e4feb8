"""Rewrites that let XNNPACK delegate a whole program and compute what eager computes.

`for_xnnpack` runs before lowering: decompositions of ops XNNPACK has no kernel for into ops it
has (layer norm, RMS norm and last-axis means as matmuls with a 1/C column, attention as matmul +
softmax, unbind / chunk / split as slices, repeat_interleave and growing expands as broadcasting
multiplies, a patching 3-D convolution as patches times a matrix), tanh-GELU spelled out, int
scalars made floats, constants folded. `expand_as_view` and `fewer_axes` are edge passes: views
instead of expands, squeezes and selects; permutes of more than 6 axes on their non-unit axes.
"""

from __future__ import annotations

import functools
import math

import torch
from torch.fx.passes.infra.pass_base import PassResult


def _layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5, cudnn_enable: bool = True):
    """layer_norm over the last axis from ops XNNPACK delegates: means as matmuls with a 1/C column
    (XNNPACK has no layer norm, and averages only 4-D tensors over H and W). In fp16, eps is at
    least fp16's smallest normal number: ViT's 1e-12 rounds to 0 there, and a constant row (DeiT's
    zero-initialised class token) then gave rsqrt(0) = inf and 0 * inf = NaN."""
    if x.dtype == torch.float16:
        eps = max(eps, 2.0**-24)
    c = x.shape[-1]
    avg = torch.full((c, 1), 1.0 / c, dtype=x.dtype)  # (C, 1), folded into a constant below
    centred = x - x @ avg  # (..., C)
    y = centred * torch.rsqrt((centred * centred) @ avg + eps)  # (..., C)
    if weight is not None:
        y = y * weight
    return y + bias if bias is not None else y


def _rms_norm(x, normalized_shape, weight=None, eps: float | None = None):
    """rms_norm over the last axis with the mean of squares as a matmul with a 1/C column, as
    _layer_norm does (diffusers' video transformers normalise queries and keys this way)."""
    if eps is None:
        eps = torch.finfo(x.dtype).eps
    if x.dtype == torch.float16:
        eps = max(eps, 2.0**-24)
    avg = torch.full((x.shape[-1], 1), 1.0 / x.shape[-1], dtype=x.dtype)  # (C, 1), folded into a constant
    y = x * torch.rsqrt((x * x) @ avg + eps)  # (..., C)
    return y * weight if weight is not None else y


SHORT_AXIS = 8  # the longest axis a mean or a broadcast is spelled out along, slice by slice


def _mean(x, dim=None, keepdim: bool = False, dtype=None):
    """A mean over the last axis as a matmul with a 1/C column (XNNPACK averages only 4-D tensors over
    H and W); over one short other axis (TDTM's frame pairs), its slices added times 1/n (for 2, the
    very number torch's mean gives); otherwise a sum times 1/n."""
    dims = [d % x.dim() for d in (dim if dim is not None else range(x.dim()))]
    if dims == [x.dim() - 1] and dtype is None:
        avg = torch.full((x.shape[-1], 1), 1.0 / x.shape[-1], dtype=x.dtype)  # (C, 1)
        y = x @ avg  # (..., 1)
        return y if keepdim else y.squeeze(-1)
    if len(dims) == 1 and x.shape[dims[0]] <= SHORT_AXIS and dtype is None:
        total = functools.reduce(torch.add, _pieces(x, [1] * x.shape[dims[0]], dims[0]))  # (..., 1, ...)
        y = total * (1.0 / x.shape[dims[0]])
        return y if keepdim else y.squeeze(dims[0])
    count = math.prod(x.shape[d] for d in dims)
    return torch.sum(x, dims, keepdim=keepdim, dtype=dtype) * (1.0 / count)


def _pieces(x, sizes: list[int], dim: int):
    """x cut along `dim` into pieces of `sizes` with slices (XNNPACK delegates slices, not split)."""
    out, start = [], 0
    for size in sizes:
        out.append(x.narrow(dim, start, size))
        start += size
    return out


def _unbind(x, dim: int = 0):
    """unbind as slices and reshapes (decomposed, it is split + squeeze, which XNNPACK leaves out)."""
    shape = [n for i, n in enumerate(x.shape) if i != dim % x.dim()]
    return [p.reshape(shape) for p in _pieces(x, [1] * x.shape[dim], dim)]


def _split(x, split_size: int | list[int], dim: int = 0):
    """split / chunk as slices."""
    if isinstance(split_size, int):
        split_size = [min(split_size, x.shape[dim] - i) for i in range(0, x.shape[dim], split_size)]
    return _pieces(x, list(split_size), dim)


def _chunk(x, chunks: int, dim: int = 0):
    return _split(x, -(-x.shape[dim] // chunks), dim)


def _expand(x, size, implicit: bool = False):
    """An expand that grows axes (TDTM's copy-back of a merged frame to its pair) as a multiply by
    ones spanning only the grown axes, which XNNPACK delegates (it has no expand); one that adds no
    elements, a reshape."""
    size = [n if n != -1 else x.shape[i - (len(size) - x.dim())] for i, n in enumerate(size)]
    if math.prod(size) == x.numel():
        return x.reshape(size)
    shape = [1] * (len(size) - x.dim()) + list(x.shape)
    ones = torch.ones([n if m == 1 and n != 1 else 1 for m, n in zip(shape, size, strict=True)], dtype=x.dtype)
    return x.reshape(shape) * ones  # (*size)


def _conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """A 3-D convolution whose kernel is its stride, one frame deep, without padding (a video
    transformer's patch embedding, Wan's (1, 2, 2)) as patches times a matrix: XNNPACK has no 3-D
    convolution. Every view here has at most 4 axes (XNNPACK takes 6). Other 3-D convolutions stay."""
    o, c, kt, kh, kw = weight.shape
    stride, padding, dilation = ([v] * 3 if isinstance(v, int) else list(v) for v in (stride, padding, dilation))
    patching = stride == [kt, kh, kw] and not any(padding) and dilation == [1, 1, 1] and groups == 1
    if not patching or kt != 1:
        return torch.ops.aten.convolution(x, weight, bias, stride, padding, dilation, False, [0, 0, 0], groups)
    b, _, t, h, w = x.shape
    hp, wp = h // kh, w // kw
    rows = x.reshape(b * c * t * hp, kh, wp, kw).permute(0, 2, 1, 3)  # (B*C*T*H', W', kh, kw)
    cells = rows.reshape(b, c, t * hp * wp, kh * kw).permute(0, 2, 1, 3)  # (B, N, C, kh*kw)
    y = torch.nn.functional.linear(cells.reshape(b, t * hp * wp, c * kh * kw), weight.reshape(o, -1), bias)  # (B, N, O)
    return y.permute(0, 2, 1).reshape(b, o, t, hp, wp)  # (B, O, T, H', W')


def _repeat_interleave(x, repeats: int, dim: int | None = None, output_size: int | None = None):
    """repeat_interleave by an int along `dim` as a broadcasting multiply by ones and a reshape (an
    expand that adds elements stays outside XNNPACK; a broadcast in a binary op is delegated)."""
    if dim is None:
        x, dim = x.flatten(), 0
    dim = dim % x.dim()
    shape = list(x.shape)
    ones = torch.ones([*shape[: dim + 1], repeats, *shape[dim + 1:]], dtype=x.dtype)
    grown = x.unsqueeze(dim + 1) * ones  # (..., n, repeats, ...)
    return grown.reshape([*shape[:dim], shape[dim] * repeats, *shape[dim + 1:]])


def spell_out_tanh_gelu(program):
    """Replace each tanh-approximate GELU, and each fp16 GELU, with mul/add/tanh nodes, in place;
    and x**2, x**3 (HF's gelu_new and gelu_fast write the cube with pow) with products.

    XNNPACK computes the exact (erf) GELU whatever `approximate` says, so a tanh-GELU came back
    4.7e-4 off eager (measured on a Linear + GELU(tanh)); mul, add and tanh it computes as written.
    XNNPACK has no fp16 GELU at all (the partitioner leaves it to a portable kernel, splitting the
    graph); in fp16 the tanh form is within fp16's own rounding of the exact one (at most 3e-4 apart).
    Exact fp32 GELU nodes stay one op. (A decomposition-table entry cannot do this: keeping the
    exact form there re-enters the same entry.)"""
    aten = torch.ops.aten
    graph = program.graph_module.graph
    changed = False
    for node in list(graph.nodes):
        if node.target is aten.pow.Tensor_Scalar and node.args[1] in (2, 3):
            # gelu_new / gelu_fast spell x**3 with pow, which XNNPACK leaves to a portable kernel in fp16
            # (3 partitions): a product of x with itself is the same number and stays delegated.
            x = node.args[0]
            with graph.inserting_before(node):
                out = graph.call_function(aten.mul.Tensor, (x, x))
                if node.args[1] == 3:
                    out = graph.call_function(aten.mul.Tensor, (out, x))
            node.replace_all_uses_with(out)
            graph.erase_node(node)
            changed = True
            continue
        if node.target is not aten.gelu.default:
            continue
        approximate = node.kwargs.get("approximate", node.args[1] if len(node.args) > 1 else "none")
        if approximate != "tanh" and node.meta["val"].dtype != torch.float16:
            continue
        x = node.args[0]
        with graph.inserting_before(node):
            def op(target, *args):
                return graph.call_function(target, args)

            cube = op(aten.mul.Tensor, op(aten.mul.Tensor, x, x), x)
            inner = op(aten.mul.Tensor, op(aten.add.Tensor, x, op(aten.mul.Tensor, cube, 0.044715)),
                       math.sqrt(2.0 / math.pi))
            out = op(aten.mul.Tensor, op(aten.mul.Tensor, x, 0.5), op(aten.add.Tensor, op(aten.tanh.default, inner), 1.0))
        node.replace_all_uses_with(out)
        graph.erase_node(node)
        changed = True
    if changed:
        graph.lint()
        program.graph_module.recompile()
    return program


def _attention(q, k, v, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False, scale=None,
               enable_gqa: bool = False):
    """scaled_dot_product_attention as matmul + softmax (inference: no dropout, no causal mask).

    torch's own math decomposition uses a 'safe' softmax whose any/eq/where run on portable
    kernels and split the XNNPACK partition in every layer. The two differ only on rows that
    are -inf throughout, which these encoders never produce."""
    if is_causal or enable_gqa:
        raise NotImplementedError("causal or grouped-query attention is not rewritten for XNNPACK")
    logits = (q @ k.transpose(-1, -2)) * (scale if scale is not None else q.shape[-1] ** -0.5)  # (B, H, T, T)
    if attn_mask is not None:
        if not attn_mask.is_floating_point():  # boolean keep-mask -> additive bias (folded when constant)
            attn_mask = (attn_mask.to(logits.dtype) - 1.0) * 1e4
        logits = logits + attn_mask
    return torch.softmax(logits, dim=-1) @ v  # (B, H, T, d)


def expand_as_view(graph_module):
    """Edge pass: an expand_copy that adds no elements ((1, N, M) -> (1, N, M), (N, M) -> (1, N, M),
    left by matmul broadcasting) and an unsqueeze / squeeze become a view_copy, and select_copy a
    slice and a view: XNNPACK delegates those, and has no expand, squeeze or select."""
    from executorch.exir.dialects._ops import ops as exir_ops

    graph, changed = graph_module.graph, False
    reshapes = (exir_ops.edge.aten.unsqueeze_copy.default, exir_ops.edge.aten.squeeze_copy.dims,
                 exir_ops.edge.aten.squeeze_copy.dim)
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target == exir_ops.edge.aten.select_copy.int:
            changed |= _select_as_slice(graph, node, exir_ops)
            continue
        if node.op == "call_function" and node.target in reshapes:  # adds or drops a unit axis: a view
            with graph.inserting_before(node):
                view = graph.call_function(exir_ops.edge.aten.view_copy.default,
                                           (node.args[0], list(node.meta["val"].shape)))
            view.meta = dict(node.meta)
            node.replace_all_uses_with(view)
            graph.erase_node(node)
            changed = True
            continue
        if node.op != "call_function" or node.target != exir_ops.edge.aten.expand_copy.default:
            continue
        src, out = node.args[0], node.meta["val"]
        if src.meta["val"].numel() != out.numel():
            continue  # a real broadcast
        with graph.inserting_before(node):
            view = graph.call_function(exir_ops.edge.aten.view_copy.default, (src, list(out.shape)))
        view.meta = dict(node.meta)
        node.replace_all_uses_with(view)
        graph.erase_node(node)
        changed = True
    graph_module.recompile()
    return PassResult(graph_module, changed)


XNN_MAX_AXES = 6  # XNNPACK defines tensors of at most 6 axes


def fewer_axes(graph_module):
    """Edge pass: a permute of more than 6 axes (diffusers' video unpatchify: 8) runs on its non-unit
    axes between two views, and chains of views collapse into one, so no tensor of more than 6 axes
    is left for XNNPACK, which refuses to define one (the whole delegate then fails to load)."""
    from executorch.exir.dialects._ops import ops as exir_ops

    graph, changed = graph_module.graph, False
    view = exir_ops.edge.aten.view_copy.default
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target != exir_ops.edge.aten.permute_copy.default:
            continue
        src, perm = node.args[0], [d % node.meta["val"].dim() for d in node.args[1]]
        shape = list(src.meta["val"].shape)
        if len(shape) <= XNN_MAX_AXES:
            continue
        kept = [d for d in range(len(shape)) if shape[d] != 1]
        rank = {d: i for i, d in enumerate(kept)}
        with graph.inserting_before(node):
            squeezed = graph.call_function(view, (src, [shape[d] for d in kept]))
            moved = graph.call_function(exir_ops.edge.aten.permute_copy.default,
                                        (squeezed, [rank[d] for d in perm if d in rank]))
            back = graph.call_function(view, (moved, list(node.meta["val"].shape)))
        squeezed.meta = {**node.meta, "val": src.meta["val"].reshape([shape[d] for d in kept])}
        moved.meta = {**node.meta, "val": squeezed.meta["val"].permute([rank[d] for d in perm if d in rank])}
        back.meta = dict(node.meta)
        node.replace_all_uses_with(back)
        graph.erase_node(node)
        changed = True
    clones = (exir_ops.edge.aten.clone.default, exir_ops.edge.dim_order_ops._clone_dim_order.default)
    for node in list(graph.nodes):  # a contiguous copy of such a wide view is the view (the graph is functional)
        if node.op == "call_function" and node.target in clones and node.meta["val"].dim() > XNN_MAX_AXES:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
            changed = True
    for node in graph.nodes:  # view(view(x)) -> view(x)
        if node.op == "call_function" and node.target == view and getattr(node.args[0], "target", None) == view:
            node.args = (node.args[0].args[0], node.args[1])
            changed = True
    if changed:
        graph.eliminate_dead_code()
        graph_module.recompile()
    return PassResult(graph_module, changed)


def float_scalars(program):
    """An int scalar in floating-point arithmetic ((a + b) / 2) becomes a float, in place: lowering
    turns it into an int64 constant and a cast that runs outside XNNPACK."""
    aten = torch.ops.aten
    arith = {aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor, aten.rsub.Scalar}
    graph, changed = program.graph_module.graph, False
    for node in graph.nodes:
        val = node.meta.get("val")
        if node.target not in arith or not isinstance(val, torch.Tensor) or not val.is_floating_point():
            continue
        if any(type(a) is int for a in node.args):  # type(a): a bool is no int here, and 2 == 2.0
            node.args, changed = tuple(float(a) if type(a) is int else a for a in node.args), True
    if changed:
        program.graph_module.recompile()
    return program


def _select_as_slice(graph, node, exir_ops) -> bool:
    """x.select(dim, i) -> x[i:i+1] along dim, then a view without that axis (a class-token pick);
    XNNPACK delegates slice and view, not select."""
    src, dim, index = node.args
    shape = list(src.meta["val"].shape)
    dim, index = dim % len(shape), index % shape[dim]
    with graph.inserting_before(node):
        piece = graph.call_function(exir_ops.edge.aten.slice_copy.Tensor, (src, dim, index, index + 1, 1))
        view = graph.call_function(exir_ops.edge.aten.view_copy.default, (piece, list(node.meta["val"].shape)))
    piece.meta = dict(node.meta)
    piece.meta["val"] = src.meta["val"].narrow(dim, index, 1)
    view.meta = dict(node.meta)
    node.replace_all_uses_with(view)
    graph.erase_node(node)
    return True


def for_xnnpack(program):
    """Rewrite a program so XNNPACK takes more of it, and computes it as eager does: layer norm, RMS
    norm, last-axis means and attention as primitive ops; unbind, chunk and repeat_interleave as
    slices, reshapes and broadcasts; tanh-GELU spelled out,
    constant subgraphs folded (a constant built in forward must be a static weight for XNNPACK's matmuls)."""
    from executorch.exir.passes.constant_prop_pass import constant_prop_pass, get_default_skip_targets_no_quant

    aten = torch.ops.aten
    program = program.run_decompositions({aten.layer_norm.default: _layer_norm, aten.rms_norm.default: _rms_norm,
                                          aten.scaled_dot_product_attention.default: _attention,
                                          aten.mean.dim: _mean, aten.unbind.int: _unbind, aten.chunk.default: _chunk,
                                          aten.split.Tensor: _split, aten.split_with_sizes.default: _split,
                                          aten.conv3d.default: _conv3d, aten.expand.default: _expand,
                                          aten.repeat_interleave.self_int: _repeat_interleave})
    program = spell_out_tanh_gelu(program)
    program = float_scalars(program)
    # Quantised weights stay int8 behind their dequantize node: folded, they would become float
    # weights and XNNPACK would run the linear in fp32 (an int8 ViT-B/16 .pte came out fp32-sized).
    quant = {n.target for n in program.graph.nodes
             if n.op == "call_function" and getattr(n.target, "namespace", "") == "quantized_decomposed"}
    with torch.no_grad():  # folded constants must be leaves (the delegate deep-copies them)
        program = constant_prop_pass(program, custom_skip_targets=quant | get_default_skip_targets_no_quant())
        return _own_storage(program)


def _own_storage(program):
    """Give every folded constant that is a view (a slice of a packed weight, e.g. SigLIP's pool-head
    `in_proj_weight.chunk(3)`, at a non-zero storage offset) storage of its own. Lowered as a view,
    it computed with wrong numbers (siglip-tiny's pooled output 3.6 off): ExecuTorch 1.5.1's
    lowering loses the offset somewhere (not traced further); a copy is right."""
    for name, value in list(program.constants.items()):
        if isinstance(value, torch.Tensor) and _is_view(value):
            program.constants[name] = value.detach().clone()
    return program


def _is_view(t: torch.Tensor) -> bool:
    return t.storage_offset() != 0 or t.untyped_storage().nbytes() != t.numel() * t.element_size()
