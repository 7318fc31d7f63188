// The ONNX window, elementwise and clip operators -> engine nodes on the
// importers' shared engine graph (onnx_import_internal.h, import/emit.h).
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/limits.h"
#include "onnx/onnx_import_internal.h"

namespace flawlens::onnx_import::internal {

int Importer::ApplyActivation(int id, int v, const std::string& x, Activation act, float alpha) {
  return graph_.ApplyActivation(v, x, NodeName(*nodes_[id]), nodes_[id]->output(0), act, alpha,
                                /*conv_only=*/false);
}

// The node's first input as a value this importer computes (its resolved name
// and value id); `map`: it must be a 4-D NCHW map.
Status Importer::TensorInput(int id, bool map, std::string* x, int* v) const {
  *x = Resolve(nodes_[id]->input(0));
  *v = graph_.ValueOf(*x);
  if (*v < 0) {
    return Unsupported(id,
                       "its input '" + Printable(*x) + "' is not a tensor this importer computes");
  }
  if (map && graph_.infos[*v].rank != 4)
    return Unsupported(id, "its input is not a 4-D NCHW tensor");
  return Status::Ok();
}

// y = x * scale[c] + shift[c]: folded into the producing convolution, else a
// 1x1 depthwise convolution.
Status Importer::EmitAffine(int id, int v, const std::string& x, std::vector<float> scale,
                            std::vector<float> shift) {
  graph_.Affine(v, x, NodeName(*nodes_[id]), nodes_[id]->output(0), std::move(scale),
                std::move(shift));
  return Status::Ok();
}

// A constant broadcast against a value: a scalar, or one value per channel
// (ONNX's NCHW broadcasting: every axis but the channel axis has size 1).
Status Importer::PerChannel(int id, const Constant& c, const ValueInfo& info,
                            std::vector<float>* out) const {
  if (c.is_int) return Unsupported(id, "an integer constant operand");
  if (c.elements == 1 && c.dims.size() <= static_cast<size_t>(info.rank)) {
    *out = {c.f[0]};
    return Status::Ok();
  }
  bool ok = c.dims.size() <= static_cast<size_t>(info.rank) && c.elements == info.c;
  for (size_t k = 0; ok && k < c.dims.size(); ++k) {
    const size_t axis = info.rank - c.dims.size() + k;  // right-aligned
    ok = c.dims[k] == 1 || (axis == 1 && c.dims[k] == info.c);
  }
  if (!ok) {
    return Unsupported(id, "the constant operand of shape " + DimsString(c.dims) +
                               " is neither a scalar nor one value per channel (" +
                               std::to_string(info.c) + " channels, axis 1)");
  }
  *out = c.f;
  return Status::Ok();
}

// Window geometry of a conv / pool node from auto_pad, pads, strides,
// dilations (already in `e`) and ceil_mode; fills the pads and the output.
Status Importer::Window(int id, const ValueInfo& in, int kh, int kw, bool ceil_mode, EngineNode* e,
                        ValueInfo* out) {
  std::string auto_pad;
  FLAWLENS_RETURN_IF_ERROR(AttrString(id, "auto_pad", "NOTSET", &auto_pad));
  std::vector<int64_t> pads;
  FLAWLENS_RETURN_IF_ERROR(AttrInts(id, "pads", &pads));
  if (!pads.empty() && pads.size() != 4)
    return Unsupported(id, "'pads' has " + std::to_string(pads.size()) + " values (2-D: 4)");
  for (int64_t p : pads) {
    if (p < 0 || p > kMaxPad)
      return Fail(id, ErrorCode::kLimitExceeded,
                  "a pad is outside [0, " + std::to_string(kMaxPad) + "]");
  }
  const int k[2] = {kh, kw}, s[2] = {e->sh, e->sw}, d[2] = {e->dh, e->dw}, size[2] = {in.h, in.w};
  int before[2] = {0, 0}, after[2] = {0, 0}, o[2] = {0, 0};
  for (int a = 0; a < 2; ++a) {
    const int64_t eff = int64_t{d[a]} * (k[a] - 1) + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      const int64_t n = (int64_t{size[a]} + s[a] - 1) / s[a];
      const int64_t total = std::max<int64_t>((n - 1) * s[a] + eff - size[a], 0);
      const int64_t small = total / 2, large = total - small;
      before[a] = static_cast<int>(auto_pad == "SAME_UPPER" ? small : large);
      after[a] = static_cast<int>(auto_pad == "SAME_UPPER" ? large : small);
      o[a] = static_cast<int>(n);
      continue;
    }
    if (auto_pad == "NOTSET") {
      if (!pads.empty()) {
        before[a] = static_cast<int>(pads[a]);
        after[a] = static_cast<int>(pads[a + 2]);
      }
    } else if (auto_pad != "VALID") {
      return Unsupported(id, "auto_pad '" + Printable(auto_pad) + "'");
    }
    const int64_t span = int64_t{size[a]} + before[a] + after[a] - eff;
    if (span < 0) {
      return Fail(id, ErrorCode::kBadShape,
                  "the input " + std::to_string(in.w) + "x" + std::to_string(in.h) +
                      " is too small for its window; choose a larger --input");
    }
    int64_t n = span / s[a] + 1;
    if (ceil_mode && span % s[a] != 0) {
      // ceil((span) / s) + 1: the last window reaches past the padding; the
      // extra rows / columns join the end padding (they never win a max and
      // are not counted by an average without count_include_pad).
      n = span / s[a] + 2;
      after[a] += static_cast<int>((n - 1) * s[a] + eff - (size[a] + before[a] + after[a]));
    }
    o[a] = static_cast<int>(n);
  }
  if (o[0] < 1 || o[1] < 1) return Fail(id, ErrorCode::kBadShape, "the output would be empty");
  for (int a = 0; a < 2; ++a) {
    if (before[a] > kMaxPad || after[a] > kMaxPad)
      return Fail(id, ErrorCode::kLimitExceeded,
                  "padding above " + std::to_string(kMaxPad) + " (auto_pad)");
  }
  e->pt = before[0];
  e->pb = after[0];
  e->pl = before[1];
  e->pr = after[1];
  *out = in;
  out->h = o[0];
  out->w = o[1];
  out->stride_h = in.stride_h * e->sh;
  out->stride_w = in.stride_w * e->sw;
  return Status::Ok();
}

namespace {

// Strides / dilations / kernel_shape attributes of a 2-D window op.
Status WindowAttrs(const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                   std::string* why, EngineNode* e) {
  if (!strides.empty() && strides.size() != 2) {
    *why = "'strides' has " + std::to_string(strides.size()) + " values (2-D: 2)";
    return Status(ErrorCode::kUnsupported, "");
  }
  if (!dilations.empty() && dilations.size() != 2) {
    *why = "'dilations' has " + std::to_string(dilations.size()) + " values (2-D: 2)";
    return Status(ErrorCode::kUnsupported, "");
  }
  for (int64_t s : strides) {
    if (s < 1 || s > kMaxStride) {
      *why = "a stride is outside [1, " + std::to_string(kMaxStride) + "]";
      return Status(ErrorCode::kLimitExceeded, "");
    }
  }
  for (int64_t d : dilations) {
    if (d < 1 || d > kMaxDilation) {
      *why = "a dilation is outside [1, " + std::to_string(kMaxDilation) + "]";
      return Status(ErrorCode::kLimitExceeded, "");
    }
  }
  if (!strides.empty()) {
    e->sh = static_cast<int>(strides[0]);
    e->sw = static_cast<int>(strides[1]);
  }
  if (!dilations.empty()) {
    e->dh = static_cast<int>(dilations[0]);
    e->dw = static_cast<int>(dilations[1]);
  }
  return Status::Ok();
}

}  // namespace

Status Importer::EmitConv(int id) {
  const onnx::NodeProto& n = *nodes_[id];
  FLAWLENS_RETURN_IF_ERROR(
      CheckAttributes(id, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}));
  if (n.input_size() < 2 || n.input_size() > 3)
    return Fail(id, ErrorCode::kBadGraph, "Conv needs 2 or 3 inputs");
  std::string x;
  int v = 0;
  FLAWLENS_RETURN_IF_ERROR(TensorInput(id, /*map=*/true, &x, &v));
  const ValueInfo in = graph_.infos[v];
  const std::string wname = Resolve(n.input(1));
  if (!IsConst(wname))
    return Unsupported(id, "the weight '" + Printable(wname) + "' is not a constant");
  Result<const Constant*> wr = ConstOf(wname);
  if (!wr.ok()) return wr.status();
  const Constant& w = **wr;
  if (w.is_int || w.dims.size() != 4)
    return Unsupported(id, "the weight must be a float tensor [out, in / group, kh, kw] (2-D)");
  if (std::any_of(w.dims.begin(), w.dims.end(), [](int64_t d) { return d < 1; }))
    return Fail(id, ErrorCode::kBadShape, "the weight has an empty dimension");
  int64_t group = 1;
  FLAWLENS_RETURN_IF_ERROR(AttrInt(id, "group", 1, &group));
  std::vector<int64_t> kernel, strides, dilations;
  FLAWLENS_RETURN_IF_ERROR(AttrInts(id, "kernel_shape", &kernel));
  FLAWLENS_RETURN_IF_ERROR(AttrInts(id, "strides", &strides));
  FLAWLENS_RETURN_IF_ERROR(AttrInts(id, "dilations", &dilations));
  if (!kernel.empty() && (kernel.size() != 2 || kernel[0] != w.dims[2] || kernel[1] != w.dims[3])) {
    return Fail(
        id, ErrorCode::kBadShape,
        "kernel_shape " + DimsString(kernel) + " disagrees with the weight " + DimsString(w.dims));
  }
  if (w.dims[2] > kMaxKernel || w.dims[3] > kMaxKernel)
    return Fail(id, ErrorCode::kLimitExceeded, "kernel above " + std::to_string(kMaxKernel));
  if (w.dims[0] > kMaxChannels)
    return Fail(id, ErrorCode::kLimitExceeded,
                "more than " + std::to_string(kMaxChannels) + " output channels");
  if (group < 1 || group > kMaxChannels || in.c != w.dims[1] * group || w.dims[0] % group != 0) {
    return Fail(id, ErrorCode::kBadShape,
                "the weight " + DimsString(w.dims) + " with group " + std::to_string(group) +
                    " does not fit an input of " + std::to_string(in.c) + " channels");
  }
  EngineNode e;
  e.name = NodeName(n);
  e.op = EngineOp::kConv2d;
  e.inputs = {v};
  std::string why;
  Status st = WindowAttrs(strides, dilations, &why, &e);
  if (!st.ok())
    return st.code() == ErrorCode::kUnsupported ? Unsupported(id, why) : Fail(id, st.code(), why);
  const int out_c = static_cast<int>(w.dims[0]), kh = static_cast<int>(w.dims[2]),
            kw = static_cast<int>(w.dims[3]), wi = static_cast<int>(w.dims[1]);
  e.kh = kh;
  e.kw = kw;
  e.groups = static_cast<int>(group);
  e.out_c = out_c;
  ValueInfo out;
  FLAWLENS_RETURN_IF_ERROR(Window(id, in, kh, kw, false, &e, &out));
  out.c = out_c;
  e.weight.resize(w.f.size());
  // OIHW -> OHWI.
  for (int o = 0; o < out_c; ++o)
    for (int i = 0; i < wi; ++i)
      for (int y = 0; y < kh; ++y)
        for (int xx = 0; xx < kw; ++xx)
          e.weight[((int64_t{o} * kh + y) * kw + xx) * wi + i] =
              w.f[((int64_t{o} * wi + i) * kh + y) * kw + xx];
  if (n.input_size() == 3 && !n.input(2).empty()) {
    const std::string bname = Resolve(n.input(2));
    if (!IsConst(bname))
      return Unsupported(id, "the bias '" + Printable(bname) + "' is not a constant");
    Result<const Constant*> b = ConstOf(bname);
    if (!b.ok()) return b.status();
    if ((*b)->is_int || (*b)->elements != out_c || (*b)->dims.size() != 1)
      return Fail(id, ErrorCode::kBadShape,
                  "the bias must be a float vector of " + std::to_string(out_c) + " values");
    e.bias = (*b)->f;
  }
  e.owner = n.output(0);
  graph_.values[n.output(0)] = graph_.AddNode(std::move(e), out);
  return Status::Ok();
}

Status Importer::EmitPool(int id, bool max) {
  const onnx::NodeProto& n = *nodes_[id];
  if (max) {
    FLAWLENS_RETURN_IF_ERROR(
        CheckAttributes(id, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads",
                             "storage_order", "strides"}));
  } else {
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(
        id, {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"}));
  }
  if (n.input_size() != 1) return Fail(id, ErrorCode::kBadGraph, "expected one input");
  if (n.output_size() > 1 && !n.output(1).empty() && graph_.consumers.count(n.output(1)))
    return Unsupported(id, "its Indices output is used");
  std::string x;
  int v = 0;
  FLAWLENS_RETURN_IF_ERROR(TensorInput(id, /*map=*/true, &x, &v));
  const ValueInfo in = graph_.infos[v];
  std::vector<int64_t> kernel, strides, dilations;
  FLAWLENS_RETURN_IF_ERROR(AttrInts(id, "kernel_shape", &kernel));
  FLAWLENS_RETURN_IF_ERROR(AttrInts(id, "strides", &strides));
  FLAWLENS_RETURN_IF_ERROR(AttrInts(id, "dilations", &dilations));
  if (kernel.size() != 2) return Unsupported(id, "kernel_shape must have 2 values (2-D pooling)");
  if (kernel[0] < 1 || kernel[1] < 1 || kernel[0] > kMaxKernel || kernel[1] > kMaxKernel)
    return Fail(id, ErrorCode::kLimitExceeded,
                "kernel_shape outside [1, " + std::to_string(kMaxKernel) + "]");
  int64_t ceil_mode = 0, count_include_pad = 0;
  FLAWLENS_RETURN_IF_ERROR(AttrInt(id, "ceil_mode", 0, &ceil_mode));
  FLAWLENS_RETURN_IF_ERROR(AttrInt(id, "count_include_pad", 0, &count_include_pad));
  EngineNode e;
  e.name = NodeName(n);
  e.op = max ? EngineOp::kMaxPool2d : EngineOp::kAvgPool2d;
  e.inputs = {v};
  e.kh = static_cast<int>(kernel[0]);
  e.kw = static_cast<int>(kernel[1]);
  std::string why;
  Status st = WindowAttrs(strides, dilations, &why, &e);
  if (!st.ok())
    return st.code() == ErrorCode::kUnsupported ? Unsupported(id, why) : Fail(id, st.code(), why);
  ValueInfo out;
  // Without ceil_mode first: the end padding ceil_mode adds is then known.
  EngineNode plain = e;
  ValueInfo plain_out;
  FLAWLENS_RETURN_IF_ERROR(Window(id, in, e.kh, e.kw, false, &plain, &plain_out));
  FLAWLENS_RETURN_IF_ERROR(Window(id, in, e.kh, e.kw, ceil_mode != 0, &e, &out));
  const bool ceil_extra = e.pb != plain.pb || e.pr != plain.pr;
  if (!max && count_include_pad && ceil_extra) {
    return Unsupported(id,
                       "ceil_mode adds a partial last window, which ONNX averages over the "
                       "padded input only and the engine over the whole window");
  }
  const int64_t eff_h = int64_t{e.dh} * (e.kh - 1) + 1, eff_w = int64_t{e.dw} * (e.kw - 1) + 1;
  if (2 * int64_t{e.pt} > eff_h || 2 * int64_t{e.pb} > eff_h || 2 * int64_t{e.pl} > eff_w ||
      2 * int64_t{e.pr} > eff_w) {
    return Unsupported(id, "padding of more than half the window (pads [" + std::to_string(e.pt) +
                               ", " + std::to_string(e.pl) + ", " + std::to_string(e.pb) + ", " +
                               std::to_string(e.pr) + "]" + (ceil_extra ? " with ceil_mode" : "") +
                               "): a window could lie entirely in the padding");
  }
  e.count_include_pad = count_include_pad != 0;
  e.owner = n.output(0);
  graph_.values[n.output(0)] = graph_.AddNode(std::move(e), out);
  return Status::Ok();
}

Status Importer::EmitResize(int id) {
  const onnx::NodeProto& n = *nodes_[id];
  if (n.op_type() == "Upsample") {
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {"mode", "scales"}));
  } else {
    FLAWLENS_RETURN_IF_ERROR(
        CheckAttributes(id, {"mode", "coordinate_transformation_mode", "nearest_mode",
                             "cubic_coeff_a", "exclude_outside", "extrapolation_value"}));
  }
  if (n.input_size() < 1) return Fail(id, ErrorCode::kBadGraph, "Resize needs an input");
  std::string x;
  int v = 0;
  FLAWLENS_RETURN_IF_ERROR(TensorInput(id, /*map=*/true, &x, &v));
  const ValueInfo in = graph_.infos[v];
  std::string mode, ctm, nearest;
  FLAWLENS_RETURN_IF_ERROR(AttrString(id, "mode", "nearest", &mode));
  // Resize-10 and Upsample map output to input pixels as x / scale, rounding
  // nearest down.
  const bool legacy = n.op_type() == "Upsample" || opset_ < 11;
  FLAWLENS_RETURN_IF_ERROR(
      AttrString(id, "coordinate_transformation_mode", legacy ? "asymmetric" : "half_pixel", &ctm));
  FLAWLENS_RETURN_IF_ERROR(
      AttrString(id, "nearest_mode", legacy ? "floor" : "round_prefer_floor", &nearest));
  // Output size from `scales` (input 2) or `sizes` (input 3); Resize-10 and
  // Upsample-9 have only scales, at input 1; Upsample-7 has them as attribute.
  const bool upsample = n.op_type() == "Upsample";
  const int first = upsample || opset_ < 11 ? 1 : 2, last = upsample || opset_ < 11 ? 1 : 3;
  int64_t oh = -1, ow = -1;
  if (const onnx::AttributeProto* a = Attr(id, "scales"); a && upsample) {
    if (a->floats_size() != 4 || a->floats(0) != 1.0f || a->floats(1) != 1.0f)
      return Unsupported(id, "scales other than [1, 1, sh, sw]");
    for (int k = 2; k < 4; ++k) {
      if (!(a->floats(k) >= 1.0f && a->floats(k) <= kMaxModelInputSide) ||
          a->floats(k) != std::floor(a->floats(k)))
        return Unsupported(id, "a non-integer scale (the engine upsamples by integer factors)");
    }
    oh = in.h * static_cast<int64_t>(a->floats(2));
    ow = in.w * static_cast<int64_t>(a->floats(3));
  }
  for (int slot = first; slot <= last; ++slot) {
    if (n.input_size() <= slot || n.input(slot).empty()) continue;
    const std::string name = Resolve(n.input(slot));
    if (!IsConst(name))
      return Unsupported(id, "its " + std::string(slot < 3 ? "scales" : "sizes") +
                                 " are computed at run time, not a constant");
    Result<const Constant*> c = ConstOf(name);
    if (!c.ok()) return c.status();
    if ((*c)->elements == 0) continue;  // an empty tensor: not given
    if ((*c)->elements != 4)
      return Fail(id, ErrorCode::kBadShape, "scales / sizes need 4 values (N, C, H, W)");
    if (slot < 3) {
      if ((*c)->is_int) return Fail(id, ErrorCode::kBadGraph, "scales are not floats");
      const std::vector<float>& s = (*c)->f;
      if (s[0] != 1.0f || s[1] != 1.0f) return Unsupported(id, "scaling the batch or channel axis");
      for (int a = 0; a < 2; ++a) {
        const float f = s[2 + a];
        if (!(f >= 1.0f && f <= kMaxModelInputSide) || f != std::floor(f)) {
          return Unsupported(
              id, "scale " + std::to_string(f) + " (the engine upsamples by integer factors >= 1)");
        }
      }
      oh = in.h * static_cast<int64_t>(s[2]);
      ow = in.w * static_cast<int64_t>(s[3]);
    } else {
      if (!(*c)->is_int) return Fail(id, ErrorCode::kBadGraph, "sizes are not integers");
      const std::vector<int64_t>& s = (*c)->i;
      if (s[0] != 1 || s[1] != in.c) return Unsupported(id, "resizing the batch or channel axis");
      oh = s[2];
      ow = s[3];
    }
  }
  if (oh < 0) return Fail(id, ErrorCode::kBadGraph, "Resize has neither scales nor sizes");
  if (oh < in.h || ow < in.w || oh % in.h != 0 || ow % in.w != 0 ||
      oh / in.h > kMaxModelInputSide || ow / in.w > kMaxModelInputSide) {
    return Unsupported(id, "resizing " + std::to_string(in.w) + "x" + std::to_string(in.h) +
                               " to " + std::to_string(ow) + "x" + std::to_string(oh) +
                               " (the engine upsamples by integer factors)");
  }
  const int fh = static_cast<int>(oh / in.h), fw = static_cast<int>(ow / in.w);
  const std::string& out_name = n.output(0);
  if (fh == 1 && fw == 1) {
    graph_.values[out_name] = v;
    return Status::Ok();
  }
  UpsampleMode engine_mode;
  if (mode == "nearest") {
    // With an integer factor every output pixel copies the input pixel it
    // lies in when coordinates are half-pixel (any rounding) or asymmetric
    // rounded down; other combinations pick a neighbour instead.
    const bool half = ctm == "half_pixel" || ctm == "pytorch_half_pixel";
    const bool asym_floor = ctm == "asymmetric" && nearest == "floor";
    const bool rounding = nearest == "round_prefer_floor" || nearest == "round_prefer_ceil";
    if (!((half && rounding) || asym_floor)) {
      return Unsupported(id, "nearest with coordinate_transformation_mode '" + Printable(ctm) +
                                 "' and nearest_mode '" + Printable(nearest) + "'");
    }
    engine_mode = UpsampleMode::kNearest;
  } else if (mode == "linear") {
    if (ctm != "half_pixel" && ctm != "pytorch_half_pixel") {
      return Unsupported(id, "linear with coordinate_transformation_mode '" + Printable(ctm) +
                                 "' (the engine: half_pixel, i.e. align_corners=False)");
    }
    engine_mode = UpsampleMode::kBilinear;
  } else {
    return Unsupported(id, "mode '" + Printable(mode) + "' (nearest, linear)");
  }
  EngineNode e;
  e.name = NodeName(n);
  e.op = EngineOp::kUpsample;
  e.inputs = {v};
  e.mode = engine_mode;
  e.scale_h = fh;
  e.scale_w = fw;
  e.owner = out_name;
  ValueInfo out = in;
  out.h = static_cast<int>(oh);
  out.w = static_cast<int>(ow);
  graph_.values[out_name] = graph_.AddNode(std::move(e), out);
  return Status::Ok();
}

Status Importer::EmitBinary(int id) {
  const onnx::NodeProto& n = *nodes_[id];
  const std::string& op = n.op_type();
  FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {}));
  if (n.input_size() != 2) return Fail(id, ErrorCode::kBadGraph, "expected two inputs");
  std::string names[2];
  int vals[2];
  for (int k = 0; k < 2; ++k) {
    names[k] = Resolve(n.input(k));
    vals[k] = IsConst(names[k]) ? -1 : graph_.ValueOf(names[k]);
    if (!IsConst(names[k]) && vals[k] < 0) {
      return Unsupported(
          id, "its input '" + Printable(names[k]) + "' is not a tensor this importer computes");
    }
  }
  const bool multiply = op == "Mul";
  if (vals[0] >= 0 && vals[1] >= 0) {
    if (op == "Sub" || op == "Div") return Unsupported(id, "two tensor operands");
    const ValueInfo& a = graph_.infos[vals[0]];
    const ValueInfo& b = graph_.infos[vals[1]];
    int first = vals[0], second = vals[1];
    const bool same = a.h == b.h && a.w == b.w && a.c == b.c && a.rank == b.rank;
    if (!same) {
      const bool b_gate = multiply && b.h == 1 && b.w == 1 && b.c == a.c && b.rank == 4;
      const bool a_gate = multiply && a.h == 1 && a.w == 1 && a.c == b.c && a.rank == 4;
      if (a_gate && !b_gate) std::swap(first, second);
      if (!a_gate && !b_gate) {
        return Unsupported(id, "operand shapes " + std::to_string(a.c) + "x" + std::to_string(a.h) +
                                   "x" + std::to_string(a.w) + " and " + std::to_string(b.c) + "x" +
                                   std::to_string(b.h) + "x" + std::to_string(b.w) +
                                   " (C x H x W) differ" +
                                   (multiply ? " and neither is a Cx1x1 gate" : ""));
      }
    }
    EngineNode e;
    e.name = NodeName(n);
    e.op = multiply ? EngineOp::kMul : EngineOp::kAdd;
    e.inputs = {first, second};
    e.owner = n.output(0);
    ValueInfo info = graph_.infos[first];
    info.stride_h = std::max(graph_.infos[first].stride_h, graph_.infos[second].stride_h);
    info.stride_w = std::max(graph_.infos[first].stride_w, graph_.infos[second].stride_w);
    graph_.values[n.output(0)] = graph_.AddNode(std::move(e), info);
    return Status::Ok();
  }
  const int t = vals[0] >= 0 ? 0 : vals[1] >= 0 ? 1 : -1;
  if (t < 0) return Unsupported(id, "both operands are constants");
  Result<const Constant*> c = ConstOf(names[1 - t]);
  if (!c.ok()) return c.status();
  std::vector<float> k;
  FLAWLENS_RETURN_IF_ERROR(PerChannel(id, **c, graph_.infos[vals[t]], &k));
  std::vector<float> scale(k.size(), 1.0f), shift(k.size(), 0.0f);
  for (size_t j = 0; j < k.size(); ++j) {
    if (op == "Add") {
      shift[j] = k[j];
    } else if (op == "Sub") {
      scale[j] = t == 0 ? 1.0f : -1.0f;
      shift[j] = t == 0 ? -k[j] : k[j];
    } else if (op == "Mul") {
      scale[j] = k[j];
    } else {  // Div
      if (t != 0) return Unsupported(id, "dividing a constant by a tensor");
      if (k[j] == 0.0f) return Fail(id, ErrorCode::kBadGraph, "division by a zero constant");
      scale[j] = 1.0f / k[j];
    }
  }
  return EmitAffine(id, vals[t], names[t], std::move(scale), std::move(shift));
}

Status Importer::EmitClip(int id) {
  const onnx::NodeProto& n = *nodes_[id];
  // Before opset 11 the bounds are attributes, from 11 on optional inputs.
  const bool attrs = opset_ < 11;
  FLAWLENS_RETURN_IF_ERROR(attrs ? CheckAttributes(id, {"min", "max"}) : CheckAttributes(id, {}));
  if (n.input_size() < 1 || n.input_size() > (attrs ? 1 : 3))
    return Fail(id, ErrorCode::kBadGraph, "Clip has " + std::to_string(n.input_size()) + " inputs");
  std::string x;
  int v = 0;
  FLAWLENS_RETURN_IF_ERROR(TensorInput(id, /*map=*/false, &x, &v));
  float bound[2] = {-INFINITY, INFINITY};
  if (attrs) {
    FLAWLENS_RETURN_IF_ERROR(AttrFloat(id, "min", -INFINITY, &bound[0]));
    FLAWLENS_RETURN_IF_ERROR(AttrFloat(id, "max", INFINITY, &bound[1]));
  }
  for (int k = 1; k < n.input_size(); ++k) {
    if (n.input(k).empty()) continue;
    const std::string name = Resolve(n.input(k));
    if (!IsConst(name)) return Unsupported(id, "its min / max are not constants");
    Result<const Constant*> c = ConstOf(name);
    if (!c.ok()) return c.status();
    if ((*c)->is_int || (*c)->elements != 1)
      return Fail(id, ErrorCode::kBadGraph, "min / max must be float scalars");
    bound[k - 1] = (*c)->f[0];
  }
  const std::string& out = n.output(0);
  if (bound[0] == -INFINITY && bound[1] == INFINITY) {
    graph_.values[out] = v;
    return Status::Ok();
  }
  if (bound[0] == 0.0f && bound[1] == 6.0f) {
    graph_.values[out] = ApplyActivation(id, v, x, Activation::kRelu6, 0.0f);
  } else if (bound[0] == 0.0f && bound[1] == INFINITY) {
    graph_.values[out] = ApplyActivation(id, v, x, Activation::kRelu, 0.0f);
  } else {
    return Unsupported(id, "Clip to [" + std::to_string(bound[0]) + ", " +
                               std::to_string(bound[1]) + "] (the engine: [0, 6] or [0, inf))");
  }
  return Status::Ok();
}

}  // namespace flawlens::onnx_import::internal
