"""A small TFLite -> ONNX converter for the MediaPipe face models (maintainers' tool).

Why our own: ``tflite2onnx`` 0.4.1 fails on the Face Landmarker models (layout propagation
through the landmark head, MEAN with a scalar axis in the blendshape model), and ``tf2onnx``
needs TensorFlow. The models use a handful of float ops, which this module maps one to one.

Layout: tensors keep TFLite's NHWC layout in the ONNX graph; the only layout-sensitive ops
(convolutions, pooling, resize) are wrapped in ``Transpose`` pairs. ONNX Runtime's transpose
optimiser cancels the pairs between consecutive convolutions at session creation, so the
graph runs in NCHW without us re-deriving the layout of every tensor. fp16 weights
(``DEQUANTIZE`` of float16 constants) become float16 initializers cast to float32, so the graph
computes in float32 throughout and computes what the TFLite float kernels compute. The float16 weights are
stored as float16 initializers followed by a ``Cast`` (lossless: they are float16 in the source).

Parsing uses the ``tflite`` flatbuffer package (schema bindings only, no TensorFlow).
"""
from __future__ import annotations

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

OPSET = 18

_TFL_DTYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT64: np.int64,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT8: np.int8,
}

_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


class UnsupportedModelError(ValueError):
    """The TFLite model uses an op or option this converter does not map."""


def _options(op, cls):
    table = op.BuiltinOptions()
    opt = cls()
    opt.Init(table.Bytes, table.Pos)
    return opt


def _same_pads(in_size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF 'SAME' padding (extra pixel at the end)."""
    out = -(-in_size // stride)
    eff = (k - 1) * dilation + 1
    total = max((out - 1) * stride + eff - in_size, 0)
    return total // 2, total - total // 2


class _Converter:
    def __init__(self, path: str, prelu: str = "dwconv", pointwise_matmul: bool = False,
                 fuse_layer_norm: bool = False):
        if prelu not in ("native", "elementwise", "dwconv"):
            raise ValueError(f"prelu must be native, elementwise or dwconv, not {prelu!r}")
        self.prelu = prelu
        self.pointwise_matmul = pointwise_matmul
        self.fuse_layer_norm = fuse_layer_norm
        buf = open(path, "rb").read()
        self.path = path
        self.model = tflite.Model.GetRootAsModel(buf, 0)
        if self.model.SubgraphsLength() != 1:
            raise UnsupportedModelError(f"{path}: expected one subgraph, found {self.model.SubgraphsLength()}")
        self.g = self.model.Subgraphs(0)
        self.nodes: list = []
        self.inits: dict[str, np.ndarray] = {}
        self.consts: dict[int, np.ndarray] = {}  # tflite tensor index -> constant value (float32 after folding)
        self.names: dict[int, str] = {}
        self._uid = 0
        self._const_names: dict[int, str] = {}
        for i in range(self.g.TensorsLength()):
            t = self.g.Tensors(i)
            data = self.model.Buffers(t.Buffer()).DataAsNumpy()
            if isinstance(data, np.ndarray) and data.size:
                dt = _TFL_DTYPES.get(t.Type())
                if dt is None:
                    raise UnsupportedModelError(f"{path}: tensor {t.Name().decode()} has unsupported type {t.Type()}")
                shape = [int(s) for s in t.ShapeAsNumpy()] if t.ShapeLength() else []
                self.consts[i] = np.frombuffer(data.tobytes(), dtype=dt).reshape(shape)
            self.names[i] = self._clean(t.Name().decode())

    @staticmethod
    def _clean(name: str) -> str:
        return name.replace(":", "_").replace(";", "_").replace("/", "_")

    def uid(self, base: str) -> str:
        self._uid += 1
        return f"{base}__{self._uid}"

    def shape(self, i: int) -> list[int]:
        t = self.g.Tensors(i)
        return [int(s) for s in t.ShapeAsNumpy()] if t.ShapeLength() else []

    def const_name(self, value: np.ndarray, base: str) -> str:
        """An initializer holding ``value``; float16 values are stored as float16 and cast to
        float32 by a ``Cast`` node (exact, and folded by ONNX Runtime at session creation)."""
        name = self.uid(base)
        value = np.ascontiguousarray(value)
        if value.dtype == np.float16:
            self.inits[name + "_f16"] = value
            self.node("Cast", [name + "_f16"], [name], to=TensorProto.FLOAT)
        else:
            self.inits[name] = value
        return name

    def inp(self, i: int) -> str:
        """ONNX name of tflite tensor ``i`` (constants become initializers on first use)."""
        if i in self.consts:
            if i not in self._const_names:
                self._const_names[i] = self.const_name(self.consts[i], self.names[i])
            return self._const_names[i]
        return self.names[i]

    def node(self, op_type: str, inputs, outputs, **attrs):
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name=self.uid(op_type), **attrs))

    def activation(self, fused: int, x: str, out: str):
        if fused == tflite.ActivationFunctionType.NONE:
            self.node("Identity", [x], [out])
        elif fused == tflite.ActivationFunctionType.RELU:
            self.node("Relu", [x], [out])
        elif fused == tflite.ActivationFunctionType.RELU6:
            self.node("Clip", [x, self.const_name(np.float32(0), "zero"), self.const_name(np.float32(6), "six")], [out])
        elif fused == tflite.ActivationFunctionType.RELU_N1_TO_1:
            self.node("Clip", [x, self.const_name(np.float32(-1), "m1"), self.const_name(np.float32(1), "p1")], [out])
        else:
            raise UnsupportedModelError(f"{self.path}: fused activation {fused} not supported")

    def nchw_op(self, op_type: str, x: str, extra: list[str], out: str, fused: int, **attrs):
        """NHWC in/out around an NCHW ONNX op, then the fused activation."""
        t_in, y, t_out = self.uid("nchw"), self.uid("y"), self.uid("nhwc")
        self.node("Transpose", [x], [t_in], perm=[0, 3, 1, 2])
        self.node(op_type, [t_in] + extra, [y], **attrs)
        self.node("Transpose", [y], [t_out], perm=[0, 2, 3, 1])
        self.activation(fused, t_out, out)

    def _ops(self):
        """(index, op name, op, inputs, outputs) for every operator."""
        g = self.g
        for k in range(g.OperatorsLength()):
            op = g.Operators(k)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            yield (k, _OP_NAMES.get(builtin, str(builtin)), op,
                   [int(i) for i in op.InputsAsNumpy()], [int(i) for i in op.OutputsAsNumpy()])

    def _layer_norms(self, ops) -> dict[int, tuple]:
        """Find TFLite's unrolled layer normalisation over the last axis (no bias):
        m = MEAN(x); n = NEG(m); v = MEAN(SQUARED_DIFFERENCE(x, m)); r = RSQRT(v + eps);
        s = r * gamma; y = x * s + n * s. Returns {index of the final ADD: (x, gamma, eps, y,
        indices of all ops of the pattern)}."""
        producer = {o: (k, name, ins) for k, name, _, ins, outs in ops for o in outs}
        consumers: dict[int, list] = {}
        for k, name, _, ins, _ in ops:
            for i in ins:
                consumers.setdefault(i, []).append(k)
        by_index = {k: (name, ins, outs) for k, name, _, ins, outs in ops}
        found = {}
        for k, name, _, ins, outs in ops:
            if name != "ADD":
                continue
            try:
                a, b = (producer[i] for i in ins)
                if a[1] != "MUL" or b[1] != "MUL":
                    continue
                x, s = a[2]
                n, s2 = b[2]
                if s != s2:
                    x, s = s, x
                if s != s2 or producer[n][1] != "NEG":
                    continue
                m = producer[n][2][0]
                km, mname, (xm, axes_m) = producer[m]
                if mname != "MEAN" or xm != x:
                    continue
                ks, sname, (r, gamma) = producer[s]
                if sname != "MUL" or gamma not in self.consts:
                    continue
                kr, rname, (ve,) = producer[r]
                ke, ename, (v, eps) = producer[ve]
                if rname != "RSQRT" or ename != "ADD" or eps not in self.consts:
                    continue
                kv, vname, (sq, _) = producer[v]
                kq, qname, (xq, mq) = producer[sq]
                if vname != "MEAN" or qname != "SQUARED_DIFFERENCE" or {xq, mq} != {x, m}:
                    continue
            except (KeyError, ValueError, TypeError):
                continue
            rank = len(self.shape(x))
            axes = np.atleast_1d(self.consts.get(axes_m, np.array([-99])))
            if len(axes) != 1 or axes[0] % rank != rank - 1:
                continue
            members = [k, a[0], b[0], producer[n][0], km, ks, kr, ke, kv, kq]
            inner = [o for j in members if j != k for o in by_index[j][2]]
            if any(set(consumers.get(o, [])) - set(members) for o in inner):
                continue  # an intermediate is used elsewhere
            gamma_v = self.consts[gamma].astype(np.float32).reshape(-1)
            found[k] = (x, gamma_v, float(np.asarray(self.consts[eps], np.float32).reshape(-1)[0]),
                        outs[0], members)
        return found

    def convert(self) -> onnx.ModelProto:
        g = self.g
        ops = list(self._ops())
        for k, name, op, ins, outs in ops:  # constants first (DEQUANTIZE only folds weights)
            if name == "DEQUANTIZE":
                self.op_dequantize(op, ins, outs)
        fused = self._layer_norms(ops) if self.fuse_layer_norm else {}
        skip = {j for v in fused.values() for j in v[4]}
        for k, name, op, ins, outs in ops:
            if k in fused:
                x, gamma, eps, y, _ = fused[k]
                self.node("LayerNormalization", [self.inp(x), self.const_name(gamma, "gamma"),
                                                 self.const_name(np.zeros_like(gamma), "beta")],
                          [self.names[y]], axis=-1, epsilon=eps)
                continue
            if k in skip:
                continue
            handler = getattr(self, "op_" + name.lower(), None)
            if handler is None:
                raise UnsupportedModelError(f"{self.path}: op {name} (operator {k}) is not supported by this converter")
            handler(op, ins, outs)
        graph_inputs = [helper.make_tensor_value_info(self.names[i], TensorProto.FLOAT, self.shape(i))
                        for i in g.InputsAsNumpy()]
        graph_outputs = [helper.make_tensor_value_info(self.names[i], TensorProto.FLOAT, self.shape(i))
                         for i in g.OutputsAsNumpy()]
        used = {n for node in self.nodes for n in node.input}
        inits = [numpy_helper.from_array(v, k) for k, v in self.inits.items() if k in used]
        graph = helper.make_graph(self.nodes, "converted", graph_inputs, graph_outputs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="emoca_edge.tools.convert_models")
        model.ir_version = 9
        onnx.checker.check_model(model)
        return model

    # ---- ops -------------------------------------------------------------------------
    def op_dequantize(self, op, ins, outs):
        if ins[0] not in self.consts:
            raise UnsupportedModelError(f"{self.path}: DEQUANTIZE of a non-constant tensor")
        v = self.consts[ins[0]]
        if v.dtype != np.float16:
            raise UnsupportedModelError(f"{self.path}: DEQUANTIZE from {v.dtype} (only float16 weights are supported)")
        self.consts[outs[0]] = v  # stays float16 here; stored as float16 + Cast (exact)

    def _conv_common(self, x_idx, out_idx, kh, kw, opt):
        h, w = self.shape(x_idx)[1:3]
        dh, dw = opt.DilationHFactor(), opt.DilationWFactor()
        sh, sw = opt.StrideH(), opt.StrideW()
        if opt.Padding() == tflite.Padding.SAME:
            pt, pb = _same_pads(h, kh, sh, dh)
            pl, pr = _same_pads(w, kw, sw, dw)
        else:
            pt = pb = pl = pr = 0
        return dict(strides=[sh, sw], dilations=[dh, dw], pads=[pt, pl, pb, pr], kernel_shape=[kh, kw])

    def op_conv_2d(self, op, ins, outs):
        opt = _options(op, tflite.Conv2DOptions)
        wt = self.consts[ins[1]]  # (O, kh, kw, I)
        if (self.pointwise_matmul and wt.shape[1:3] == (1, 1) and opt.StrideH() == opt.StrideW() == 1):
            # 1x1 convolution = matrix product over the channel (last) axis, no layout change
            y = self.uid("mm")
            self.node("MatMul", [self.inp(ins[0]), self.const_name(wt[:, 0, 0, :].T.copy(), "w")], [y])
            if len(ins) > 2 and ins[2] >= 0:
                yb = self.uid("bias")
                self.node("Add", [y, self.inp(ins[2])], [yb])
                y = yb
            self.activation(opt.FusedActivationFunction(), y, self.names[outs[0]])
            return
        attrs = self._conv_common(ins[0], outs[0], wt.shape[1], wt.shape[2], opt)
        w = self.const_name(wt.transpose(0, 3, 1, 2), "w")
        extra = [w] + ([self.inp(ins[2])] if len(ins) > 2 and ins[2] >= 0 else [])
        self.nchw_op("Conv", self.inp(ins[0]), extra, self.names[outs[0]], opt.FusedActivationFunction(), **attrs)

    def op_depthwise_conv_2d(self, op, ins, outs):
        opt = _options(op, tflite.DepthwiseConv2DOptions)
        wt = self.consts[ins[1]]  # (1, kh, kw, C*M)
        c_in = self.shape(ins[0])[3]
        attrs = self._conv_common(ins[0], outs[0], wt.shape[1], wt.shape[2], opt)
        w = self.const_name(wt.transpose(3, 0, 1, 2), "dw")  # (C*M, 1, kh, kw)
        extra = [w] + ([self.inp(ins[2])] if len(ins) > 2 and ins[2] >= 0 else [])
        self.nchw_op("Conv", self.inp(ins[0]), extra, self.names[outs[0]], opt.FusedActivationFunction(),
                     group=c_in, **attrs)

    def op_max_pool_2d(self, op, ins, outs):
        opt = _options(op, tflite.Pool2DOptions)
        kh, kw, sh, sw = opt.FilterHeight(), opt.FilterWidth(), opt.StrideH(), opt.StrideW()
        h, w = self.shape(ins[0])[1:3]
        if opt.Padding() == tflite.Padding.SAME:
            pt, pb = _same_pads(h, kh, sh, 1)
            pl, pr = _same_pads(w, kw, sw, 1)
        else:
            pt = pb = pl = pr = 0
        self.nchw_op("MaxPool", self.inp(ins[0]), [], self.names[outs[0]], opt.FusedActivationFunction(),
                     kernel_shape=[kh, kw], strides=[sh, sw], pads=[pt, pl, pb, pr])

    def op_resize_bilinear(self, op, ins, outs):
        opt = _options(op, tflite.ResizeBilinearOptions)
        if opt.AlignCorners():
            mode = "align_corners"
        elif opt.HalfPixelCenters():
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        n, h, w, c = self.shape(outs[0])
        sizes = self.const_name(np.array([n, c, h, w], np.int64), "sizes")
        self.nchw_op("Resize", self.inp(ins[0]), ["", "", sizes], self.names[outs[0]], 0,
                     mode="linear", coordinate_transformation_mode=mode)

    def op_pad(self, op, ins, outs):
        p = self.consts[ins[1]].astype(np.int64)  # (rank, 2)
        shape = self.shape(ins[0])
        if (len(shape) == 4 and not p[:3].any() and p[3, 0] == 0 and p[3, 1] > 0):
            # Zero channels appended (the BlazeFace/BlazeBlock shortcut): Concat with zeros made
            # by a zero-weight 1x1 convolution of the input, so that ONNX Runtime keeps the
            # whole residual chain in its blocked NCHWc layout (a Pad forces layout reorders).
            c, extra = shape[3], int(p[3, 1])
            x = self.inp(ins[0])
            zeros = self.uid("zeros")
            if extra % c == 0:
                w = self.const_name(np.zeros((extra, 1, 1, 1), np.float16), "zw")
                self.nchw_op("Conv", x, [w], zeros, 0, group=c, kernel_shape=[1, 1])
            else:
                w = self.const_name(np.zeros((extra, c, 1, 1), np.float16), "zw")
                self.nchw_op("Conv", x, [w], zeros, 0, kernel_shape=[1, 1])
            self.node("Concat", [x, zeros], [self.names[outs[0]]], axis=3)
            return
        pads = self.const_name(np.concatenate([p[:, 0], p[:, 1]]), "pads")
        self.node("Pad", [self.inp(ins[0]), pads], [self.names[outs[0]]], mode="constant")

    def op_reshape(self, op, ins, outs):
        shape = self.const_name(np.array(self.shape(outs[0]), np.int64), "shape")
        self.node("Reshape", [self.inp(ins[0]), shape], [self.names[outs[0]]])

    def op_concatenation(self, op, ins, outs):
        opt = _options(op, tflite.ConcatenationOptions)
        tmp = self.uid("concat")
        self.node("Concat", [self.inp(i) for i in ins], [tmp], axis=opt.Axis())
        self.activation(opt.FusedActivationFunction(), tmp, self.names[outs[0]])

    def _binary(self, onnx_op, opt_cls, op, ins, outs):
        fused = _options(op, opt_cls).FusedActivationFunction() if op.BuiltinOptions() is not None else 0
        tmp = self.uid(onnx_op)
        self.node(onnx_op, [self.inp(ins[0]), self.inp(ins[1])], [tmp])
        self.activation(fused, tmp, self.names[outs[0]])

    def op_add(self, op, ins, outs):
        self._binary("Add", tflite.AddOptions, op, ins, outs)

    def op_sub(self, op, ins, outs):
        self._binary("Sub", tflite.SubOptions, op, ins, outs)

    def op_mul(self, op, ins, outs):
        self._binary("Mul", tflite.MulOptions, op, ins, outs)

    def op_div(self, op, ins, outs):
        self._binary("Div", tflite.DivOptions, op, ins, outs)

    def op_squared_difference(self, op, ins, outs):
        d = self.uid("diff")
        self.node("Sub", [self.inp(ins[0]), self.inp(ins[1])], [d])
        self.node("Mul", [d, d], [self.names[outs[0]]])

    def op_relu(self, op, ins, outs):
        self.node("Relu", [self.inp(ins[0])], [self.names[outs[0]]])

    def op_prelu(self, op, ins, outs):
        x, out = self.inp(ins[0]), self.names[outs[0]]
        if self.prelu == "native" or ins[1] not in self.consts:
            self.node("PRelu", [x, self.inp(ins[1])], [out])
            return
        alpha = self.consts[ins[1]].astype(np.float32)
        if self.prelu == "elementwise":
            # prelu(x) = x + (alpha - 1) * min(x, 0)
            m, t = self.uid("min"), self.uid("scaled")
            self.node("Min", [x, self.const_name(np.float32(0), "zero")], [m])
            self.node("Mul", [m, self.const_name(alpha - 1, "alpha_m1")], [t])
            self.node("Add", [x, t], [out])
            return
        # "dwconv": prelu(x) = x + (1 - alpha) * relu(-x), both products as 1x1 depthwise
        # convolutions (ONNX Runtime runs these in its blocked NCHWc layout and fuses the Add).
        c = alpha.size
        if alpha.shape != (1, 1, c) or self.shape(ins[0])[-1] != c:
            raise UnsupportedModelError(f"{self.path}: PRELU slope of shape {alpha.shape} is not per channel")
        neg = self.const_name(np.full((c, 1, 1, 1), -1, np.float32), "neg")
        scale = self.const_name((1 - alpha).reshape(c, 1, 1, 1), "one_m_alpha")
        t_in, r, s, t_out = self.uid("nchw"), self.uid("relu_neg"), self.uid("prelu"), self.uid("nhwc")
        self.node("Transpose", [x], [t_in], perm=[0, 3, 1, 2])
        rn = self.uid("negx")
        self.node("Conv", [t_in, neg], [rn], group=c, kernel_shape=[1, 1])
        self.node("Relu", [rn], [r])
        sc = self.uid("scaled")
        self.node("Conv", [r, scale], [sc], group=c, kernel_shape=[1, 1])
        self.node("Add", [sc, t_in], [s])
        self.node("Transpose", [s], [t_out], perm=[0, 2, 3, 1])
        self.node("Identity", [t_out], [out])

    def op_logistic(self, op, ins, outs):
        self.node("Sigmoid", [self.inp(ins[0])], [self.names[outs[0]]])

    def op_neg(self, op, ins, outs):
        self.node("Neg", [self.inp(ins[0])], [self.names[outs[0]]])

    def op_sqrt(self, op, ins, outs):
        self.node("Sqrt", [self.inp(ins[0])], [self.names[outs[0]]])

    def op_rsqrt(self, op, ins, outs):
        s = self.uid("sqrt")
        self.node("Sqrt", [self.inp(ins[0])], [s])
        self.node("Reciprocal", [s], [self.names[outs[0]]])

    def _reduce(self, onnx_op, op, ins, outs):
        opt = _options(op, tflite.ReducerOptions)
        axes = np.atleast_1d(self.consts[ins[1]]).astype(np.int64)
        self.node(onnx_op, [self.inp(ins[0]), self.const_name(axes, "axes")], [self.names[outs[0]]],
                  keepdims=int(bool(opt.KeepDims())))

    def op_mean(self, op, ins, outs):
        self._reduce("ReduceMean", op, ins, outs)

    def op_sum(self, op, ins, outs):
        self._reduce("ReduceSum", op, ins, outs)

    def op_transpose(self, op, ins, outs):
        perm = [int(p) for p in self.consts[ins[1]]]
        self.node("Transpose", [self.inp(ins[0])], [self.names[outs[0]]], perm=perm)

    def op_strided_slice(self, op, ins, outs):
        opt = _options(op, tflite.StridedSliceOptions)
        if opt.EllipsisMask() or opt.NewAxisMask():
            raise UnsupportedModelError(f"{self.path}: STRIDED_SLICE with ellipsis/new-axis masks")
        begin = self.consts[ins[1]].astype(np.int64).copy()
        end = self.consts[ins[2]].astype(np.int64).copy()
        strides = self.consts[ins[3]].astype(np.int64)
        rank = len(begin)
        big = np.iinfo(np.int64).max
        shrink = []
        for a in range(rank):
            if opt.ShrinkAxisMask() >> a & 1:
                end[a] = begin[a] + 1 if begin[a] != -1 else big
                shrink.append(a)
                continue
            if opt.BeginMask() >> a & 1:
                begin[a] = 0 if strides[a] > 0 else big
            if opt.EndMask() >> a & 1:
                end[a] = big if strides[a] > 0 else -big
        axes = np.arange(rank, dtype=np.int64)
        args = [self.inp(ins[0]), self.const_name(begin, "b"), self.const_name(end, "e"),
                self.const_name(axes, "ax"), self.const_name(strides, "st")]
        if shrink:
            tmp = self.uid("slice")
            self.node("Slice", args, [tmp])
            self.node("Squeeze", [tmp, self.const_name(np.array(shrink, np.int64), "sq")], [self.names[outs[0]]])
        else:
            self.node("Slice", args, [self.names[outs[0]]])


def convert_tflite(path: str, prelu: str = "dwconv", pointwise_matmul: bool = False,
                   fuse_layer_norm: bool = False) -> onnx.ModelProto:
    """Convert the float TFLite model at ``path`` to an ONNX model (opset 18, float32).

    ``prelu``: how PRELU is expressed: ``native`` (ONNX PRelu; slow in ONNX Runtime's CPU
    kernels), ``elementwise`` (Min/Mul/Add) or ``dwconv`` (two 1x1 depthwise convolutions,
    the fastest in ONNX Runtime; numerically the same function up to float rounding).
    ``pointwise_matmul``: write 1x1 convolutions as MatMul over the channel axis (NHWC, no
    transposes); faster for the MLP-style blendshape model, slower for the CNNs (whose
    convolutions ONNX Runtime runs in its blocked layout).
    ``fuse_layer_norm``: write TFLite's unrolled layer normalisation (MEAN, SQUARED_DIFFERENCE,
    RSQRT, MULs) as one ONNX LayerNormalization (fewer nodes; same formula).
    """
    return _Converter(path, prelu, pointwise_matmul, fuse_layer_norm).convert()
