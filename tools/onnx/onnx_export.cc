#include "onnx/onnx_export.h"

#include <onnx/onnx_pb.h>  // onnx-ml.pb.h (ONNX_ML), namespace onnx

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "image/gaussian_blur.h"
#include "image/preprocess.h"
#include "model/json_value.h"
#include "model/safetensors.h"
#include "onnx/onnx_export_internal.h"

namespace flawlens::onnx_export {
namespace {

using internal::Json;
using internal::ShortFloat;

// Output and initializer names are unique; nodes are named after their
// (first) output.
class Builder {
 public:
  explicit Builder(onnx::GraphProto* g) : g_(g) {}

  struct Op {
    onnx::NodeProto* node;
    std::string out;
  };

  void Reserve(const std::string& name) { used_.insert(name); }

  std::string Fresh(const std::string& hint) {
    std::string name = hint;
    for (int k = 2; !used_.insert(name).second; ++k) name = hint + "_" + std::to_string(k);
    return name;
  }

  // `out_name` given: that exact (reserved) name, else a fresh one from `hint`.
  Op Node(const char* type, const std::vector<std::string>& inputs, const std::string& hint,
          const std::string& out_name = "") {
    onnx::NodeProto* n = g_->add_node();
    n->set_op_type(type);
    for (const std::string& in : inputs) n->add_input(in);
    const std::string out = out_name.empty() ? Fresh(hint) : out_name;
    n->add_output(out);
    n->set_name(out);
    return {n, out};
  }

  std::string Floats(const std::string& hint, const std::vector<int64_t>& dims, const float* data,
                     size_t n) {
    onnx::TensorProto* t = g_->add_initializer();
    const std::string name = Fresh(hint);
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    // ONNX raw_data is little-endian, as are the model file and the hosts
    // flawlens runs on.
    t->set_raw_data(std::string(reinterpret_cast<const char*>(data), n * sizeof(float)));
    floats_ += static_cast<int64_t>(n);
    return name;
  }
  std::string Floats(const std::string& hint, const std::vector<int64_t>& dims,
                     const std::vector<float>& v) {
    return Floats(hint, dims, v.data(), v.size());
  }

  std::string Ints(const std::string& hint, const std::vector<int64_t>& dims,
                   const std::vector<int64_t>& v) {
    onnx::TensorProto* t = g_->add_initializer();
    const std::string name = Fresh(hint);
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(int64_t)));
    return name;
  }

  // A float scalar (rank 0), shared by every node that needs the same value.
  std::string Scalar(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    auto it = scalars_.find(bits);
    if (it != scalars_.end()) return it->second;
    const std::string name = Floats("const/" + ShortFloat(v), {}, &v, 1);
    scalars_[bits] = name;
    return name;
  }

  std::string Shape(const std::vector<int64_t>& dims) {
    std::string key;
    for (int64_t d : dims) key += std::to_string(d) + "x";
    auto it = shapes_.find(key);
    if (it != shapes_.end()) return it->second;
    const std::string name = Ints("shape/" + key.substr(0, key.size() - 1),
                                  {static_cast<int64_t>(dims.size())}, dims);
    shapes_[key] = name;
    return name;
  }

  void ValueInfo(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims,
                 int elem_type = onnx::TensorProto::FLOAT) {
    v->set_name(name);
    onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(elem_type);
    for (int64_t d : dims) {
      onnx::TensorShapeProto_Dimension* dim = t->mutable_shape()->add_dim();
      if (d < 0) {
        dim->set_dim_param(kBatchDim);
      } else {
        dim->set_dim_value(d);
      }
    }
  }

  int64_t floats() const { return floats_; }

 private:
  onnx::GraphProto* g_;
  std::set<std::string> used_;
  std::map<uint32_t, std::string> scalars_;
  std::map<std::string, std::string> shapes_;
  int64_t floats_ = 0;
};

void AttrInt(onnx::NodeProto* n, const char* name, int64_t v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void AttrInts(onnx::NodeProto* n, const char* name, const std::vector<int64_t>& v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
void AttrFloat(onnx::NodeProto* n, const char* name, float v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
void AttrString(onnx::NodeProto* n, const char* name, const std::string& v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(v);
}

// Every value has a batch dimension (any size: images are independent).
std::vector<int64_t> Nchw(const Shape& s) { return {-1, s.c, s.h, s.w}; }

// The engine's activation (kernels/activation.h) on `in`. hard_swish and
// hard_sigmoid with the default 1/6 are ONNX's HardSwish / HardSigmoid;
// another alpha (TF's float16-rounded 1/6) is spelled out as the engine
// computes it: x * min(max(x + 3, 0), 6) * alpha.
std::string EmitActivation(Builder& b, Activation act, float alpha, const std::string& in,
                           const std::string& hint) {
  switch (act) {
    case Activation::kNone:
      return in;
    case Activation::kRelu:
      return b.Node("Relu", {in}, hint).out;
    case Activation::kLeakyRelu: {
      Builder::Op op = b.Node("LeakyRelu", {in}, hint);
      AttrFloat(op.node, "alpha", alpha);
      return op.out;
    }
    case Activation::kSigmoid:
      return b.Node("Sigmoid", {in}, hint).out;
    case Activation::kSilu: {
      const std::string s = b.Node("Sigmoid", {in}, hint + "/sigmoid").out;
      return b.Node("Mul", {in, s}, hint).out;
    }
    case Activation::kRelu6:
      return b.Node("Clip", {in, b.Scalar(0.0f), b.Scalar(6.0f)}, hint).out;
    case Activation::kHardSwish: {
      if (alpha == DefaultAlpha(Activation::kHardSwish)) return b.Node("HardSwish", {in}, hint).out;
      const std::string t = b.Node("Add", {in, b.Scalar(3.0f)}, hint + "/add3").out;
      const std::string c = b.Node("Clip", {t, b.Scalar(0.0f), b.Scalar(6.0f)}, hint + "/relu6").out;
      const std::string m = b.Node("Mul", {in, c}, hint + "/mul").out;
      return b.Node("Mul", {m, b.Scalar(alpha)}, hint).out;
    }
    case Activation::kHardSigmoid: {
      if (alpha == DefaultAlpha(Activation::kHardSigmoid)) {
        Builder::Op op = b.Node("HardSigmoid", {in}, hint);
        AttrFloat(op.node, "alpha", 1.0f / 6.0f);
        AttrFloat(op.node, "beta", 0.5f);
        return op.out;
      }
      const std::string t = b.Node("Add", {in, b.Scalar(3.0f)}, hint + "/add3").out;
      const std::string c = b.Node("Clip", {t, b.Scalar(0.0f), b.Scalar(6.0f)}, hint + "/relu6").out;
      return b.Node("Mul", {c, b.Scalar(alpha)}, hint).out;
    }
  }
  return in;
}

// Every output position of a window along one axis reads at least one input
// sample (the engine's max pool gives 0 for a window entirely in padding,
// ONNX's the lowest float).
bool WindowsTouchInput(int in, int out, int kernel, int stride, int dilation, int pad_before) {
  for (int o = 0; o < out; ++o) {
    bool any = false;
    for (int t = 0; t < kernel && !any; ++t) {
      const int64_t i = int64_t{o} * stride - pad_before + int64_t{t} * dilation;
      any = i >= 0 && i < in;
    }
    if (!any) return false;
  }
  return true;
}

// Row-major region (or mean) index of every cell of an h x w map whose
// parameters are stored on a gh x gw grid (graph.h PositionRegion).
std::vector<int64_t> RegionIndex(int h, int w, int64_t gh, int64_t gw) {
  std::vector<int64_t> idx(static_cast<size_t>(h) * w);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) idx[size_t(y) * w + x] = (y * gh / h) * gw + x * gw / w;
  }
  return idx;
}

// One engine node -> ONNX nodes; returns the name of the node's value.
Result<std::string> EmitNode(Builder& b, const Graph& g, size_t i,
                             const std::vector<std::string>& values) {
  const Node& n = g.nodes[i];
  const Shape& out = g.shapes[i + 1];
  const Shape& in = g.shapes[size_t(n.inputs[0])];
  const std::string& x = values[size_t(n.inputs[0])];
  const std::string& name = n.name;
  const bool act = n.activation != Activation::kNone;
  const std::string main_hint = act ? name + "/" + OpTypeName(n.op) : name;
  switch (n.op) {
    case OpType::kConv2d: {
      const int cin_g = in.c / n.groups, kh = n.kernel_h, kw = n.kernel_w, oc = out.c;
      // OHWI -> OIHW.
      std::vector<float> w(static_cast<size_t>(oc) * cin_g * kh * kw);
      for (int o = 0; o < oc; ++o)
        for (int y = 0; y < kh; ++y)
          for (int xx = 0; xx < kw; ++xx)
            for (int c = 0; c < cin_g; ++c) {
              w[((size_t(o) * cin_g + c) * kh + y) * kw + xx] =
                  n.weight.data[((size_t(o) * kh + y) * kw + xx) * cin_g + c];
            }
      std::vector<std::string> ins = {x, b.Floats(name + ".weight", {oc, cin_g, kh, kw}, w)};
      if (n.bias.data) ins.push_back(b.Floats(name + ".bias", {oc}, n.bias.data, size_t(oc)));
      Builder::Op op = b.Node("Conv", ins, main_hint);
      AttrInts(op.node, "kernel_shape", {kh, kw});
      AttrInts(op.node, "strides", {n.stride_h, n.stride_w});
      AttrInts(op.node, "dilations", {n.dilation_h, n.dilation_w});
      AttrInts(op.node, "pads", {n.pad_top, n.pad_left, n.pad_bottom, n.pad_right});
      AttrInt(op.node, "group", n.groups);
      return EmitActivation(b, n.activation, n.alpha, op.out, name);
    }
    case OpType::kActivation:
      return EmitActivation(b, n.activation, n.alpha, x, name);
    case OpType::kMaxPool2d: {
      if (!WindowsTouchInput(in.h, out.h, n.kernel_h, n.stride_h, n.dilation_h, n.pad_top) ||
          !WindowsTouchInput(in.w, out.w, n.kernel_w, n.stride_w, n.dilation_w, n.pad_left)) {
        return MakeError(ErrorCode::kUnsupported,
                         "node '%s' (maxpool2d): a window lies entirely in the padding (input "
                         "%dx%d, kernel %dx%d, dilation %dx%d); the engine gives 0 there, ONNX "
                         "MaxPool the lowest float, so it cannot be exported",
                         name.c_str(), in.h, in.w, n.kernel_h, n.kernel_w, n.dilation_h,
                         n.dilation_w);
      }
      Builder::Op op = b.Node("MaxPool", {x}, name);
      AttrInts(op.node, "kernel_shape", {n.kernel_h, n.kernel_w});
      AttrInts(op.node, "strides", {n.stride_h, n.stride_w});
      AttrInts(op.node, "dilations", {n.dilation_h, n.dilation_w});
      AttrInts(op.node, "pads", {n.pad_top, n.pad_left, n.pad_bottom, n.pad_right});
      return op.out;
    }
    case OpType::kAvgPool2d: {
      // The output size rule keeps every window inside the padded input, so
      // PyTorch's divisor (taps inside the padded input) is the whole window:
      // ONNX's count_include_pad = 1.
      Builder::Op op = b.Node("AveragePool", {x}, name);
      AttrInts(op.node, "kernel_shape", {n.kernel_h, n.kernel_w});
      AttrInts(op.node, "strides", {n.stride_h, n.stride_w});
      AttrInts(op.node, "pads", {n.pad_top, n.pad_left, n.pad_bottom, n.pad_right});
      AttrInt(op.node, "count_include_pad", n.count_include_pad ? 1 : 0);
      return op.out;
    }
    case OpType::kGlobalAvgPool:
      return b.Node("GlobalAveragePool", {x}, name).out;
    case OpType::kDense: {
      // NCHW flattens in C, H, W order; the weight's columns are in NHWC order.
      const int64_t hw = int64_t{in.h} * in.w, nin = in.elements();
      const int oc = out.c;
      std::vector<float> w(static_cast<size_t>(oc * nin));
      for (int o = 0; o < oc; ++o)
        for (int64_t p = 0; p < hw; ++p)
          for (int c = 0; c < in.c; ++c) {
            w[size_t(o * nin + c * hw + p)] = n.weight.data[size_t(o * nin + p * in.c + c)];
          }
      const std::string flat = b.Node("Flatten", {x}, name + "/flatten").out;
      std::vector<std::string> ins = {flat, b.Floats(name + ".weight", {oc, nin}, w)};
      if (n.bias.data) ins.push_back(b.Floats(name + ".bias", {oc}, n.bias.data, size_t(oc)));
      Builder::Op gemm = b.Node("Gemm", ins, name + "/gemm");
      AttrInt(gemm.node, "transB", 1);
      const std::string r =
          b.Node("Reshape", {gemm.out, b.Shape({-1, oc, 1, 1})}, main_hint).out;
      return EmitActivation(b, n.activation, n.alpha, r, name);
    }
    case OpType::kUpsample: {
      const std::vector<float> scales = {1.0f, 1.0f, float(n.scale_h), float(n.scale_w)};
      Builder::Op op =
          b.Node("Resize", {x, "", b.Floats(name + "/scales", {4}, scales)}, name);
      if (n.upsample_mode == UpsampleMode::kNearest) {
        AttrString(op.node, "mode", "nearest");
        AttrString(op.node, "coordinate_transformation_mode", "asymmetric");
        AttrString(op.node, "nearest_mode", "floor");
      } else {
        AttrString(op.node, "mode", "linear");
        AttrString(op.node, "coordinate_transformation_mode", "half_pixel");
      }
      return op.out;
    }
    case OpType::kConcat: {
      std::vector<std::string> ins;
      for (int v : n.inputs) ins.push_back(values[size_t(v)]);
      Builder::Op op = b.Node("Concat", ins, name);
      AttrInt(op.node, "axis", 1);
      return op.out;
    }
    case OpType::kAdd:
    case OpType::kMul: {
      const std::string r = b.Node(n.op == OpType::kAdd ? "Add" : "Mul",
                                   {x, values[size_t(n.inputs[1])]}, main_hint)
                                .out;
      return EmitActivation(b, n.activation, n.alpha, r, name);
    }
    case OpType::kReduceChannels: {
      const char* type = "ReduceSumSquare";
      if (n.reduce_mode == ReduceMode::kMin) type = "ReduceMin";
      if (n.reduce_mode == ReduceMode::kMax) type = "ReduceMax";
      if (n.reduce_mode == ReduceMode::kMean) type = "ReduceMean";
      Builder::Op op = b.Node(type, {x}, name);
      AttrInts(op.node, "axes", {1});
      AttrInt(op.node, "keepdims", 1);
      return op.out;
    }
    case OpType::kPositionMahalanobis: {
      // out[p] = |A_r(p) (x_p - mu_p)|^2, A on a gh x gw grid of regions
      // (gh = h, gw = w: one per cell; 1 x 1: one for the map). The cells
      // of each region become one batch of a MatMul [G, D, D] x [N, G, D, S]
      // (S: the largest region; smaller ones repeat a cell of their own; N
      // images), so the whitening matrices are never copied per cell.
      const int d = in.c, h = in.h, w = in.w;
      const int64_t hw = int64_t{h} * w;
      if (n.weight.shape.size() != 4 || n.bias.shape.size() != 3 || n.weight.shape[2] != d ||
          n.weight.shape[3] != d || n.bias.shape[2] != d) {
        return MakeError(ErrorCode::kUnsupported,
                         "node '%s' (position_mahalanobis): weight or bias layout this exporter "
                         "does not know (weight rank %zu, bias rank %zu, %d channels)",
                         name.c_str(), n.weight.shape.size(), n.bias.shape.size(), d);
      }
      const int64_t gh = n.weight.shape[0], gw = n.weight.shape[1], groups = gh * gw;
      const std::vector<int64_t> region = RegionIndex(h, w, gh, gw);
      std::vector<std::vector<int64_t>> members(static_cast<size_t>(groups));
      for (int64_t p = 0; p < hw; ++p) members[size_t(region[size_t(p)])].push_back(p);
      size_t s = 1;
      for (const auto& m : members) s = std::max(s, m.size());
      std::vector<int64_t> gather(size_t(groups) * s), back(static_cast<size_t>(hw));
      bool identity = int64_t(gather.size()) == hw;
      for (size_t r = 0; r < members.size(); ++r) {
        for (size_t k = 0; k < s; ++k) {
          const size_t i = r * s + k;
          gather[i] = members[r].empty() ? 0 : members[r][std::min(k, members[r].size() - 1)];
          if (k < members[r].size()) back[size_t(members[r][k])] = int64_t(i);
          identity = identity && gather[i] == int64_t(i);
        }
      }
      // mu per cell, channels first: [D, h*w] (a mean on a grid is expanded);
      // x [N, D, h, w] -> [N, D, h*w].
      const int64_t bh = n.bias.shape[0], bw = n.bias.shape[1];
      const std::vector<int64_t> bias_region = RegionIndex(h, w, bh, bw);
      std::vector<float> mu(static_cast<size_t>(hw * d));
      for (int64_t p = 0; p < hw; ++p)
        for (int j = 0; j < d; ++j)
          mu[size_t(j * hw + p)] = n.bias.data[size_t(bias_region[size_t(p)] * d + j)];
      const std::string xr = b.Node("Reshape", {x, b.Shape({-1, d, hw})}, name + "/cells").out;
      std::string diff =
          b.Node("Sub", {xr, b.Floats(name + ".bias", {d, hw}, mu)}, name + "/diff").out;
      if (!identity) {
        Builder::Op g = b.Node("Gather", {diff, b.Ints(name + "/region_cells",
                                                       {int64_t(gather.size())}, gather)},
                               name + "/by_region");
        AttrInt(g.node, "axis", 2);
        diff = g.out;
      }
      const int64_t ss = int64_t(s);
      const std::string r4 =
          b.Node("Reshape", {diff, b.Shape({-1, d, groups, ss})}, name + "/regions").out;
      Builder::Op tr = b.Node("Transpose", {r4}, name + "/regions_t");
      AttrInts(tr.node, "perm", {0, 2, 1, 3});
      const std::string a = b.Floats(name + ".weight", {groups, d, d}, n.weight.data,
                                     size_t(groups * d * d));
      const std::string y = b.Node("MatMul", {a, tr.out}, name + "/whiten").out;
      Builder::Op sq = b.Node("ReduceSumSquare", {y}, name + "/sum_squares");
      AttrInts(sq.node, "axes", {2});
      AttrInt(sq.node, "keepdims", 0);
      std::string cells = sq.out;
      if (!identity) {
        const std::string flat =
            b.Node("Reshape", {cells, b.Shape({-1, groups * ss})}, name + "/region_flat").out;
        Builder::Op g = b.Node("Gather", {flat, b.Ints(name + "/cell_slots", {hw}, back)},
                               name + "/by_cell");
        AttrInt(g.node, "axis", 1);
        cells = g.out;
      }
      return b.Node("Reshape", {cells, b.Shape({-1, 1, h, w})}, name).out;
    }
  }
  return MakeError(ErrorCode::kUnsupported, "node '%s': op '%s' has no ONNX export",
                   name.c_str(), OpTypeName(n.op));
}

// Separable blur of [N, C, h, w] with a symmetric kernel (one per channel,
// depthwise), borders by `border`: the samples outside are gathered with the
// engine's own border index (image/gaussian_blur.h), then two valid convs,
// rows first as GaussianBlurPlane does.
std::string EmitBlur(Builder& b, const std::string& x, int c, int h, int w,
                     const std::vector<float>& kern, BlurBorder border, const std::string& hint) {
  const int r = static_cast<int>(kern.size() / 2), taps = 2 * r + 1;
  std::vector<int64_t> iw(size_t(w + 2 * r)), ih(size_t(h + 2 * r));
  for (int j = 0; j < w + 2 * r; ++j) iw[size_t(j)] = BlurBorderIndex(j - r, w, border);
  for (int j = 0; j < h + 2 * r; ++j) ih[size_t(j)] = BlurBorderIndex(j - r, h, border);
  std::vector<float> k(size_t(c) * taps);
  for (int ch = 0; ch < c; ++ch) std::memcpy(&k[size_t(ch) * taps], kern.data(), taps * sizeof(float));
  Builder::Op px = b.Node("Gather", {x, b.Ints(hint + "/cols", {w + 2 * r}, iw)}, hint + "/pad_x");
  AttrInt(px.node, "axis", 3);
  Builder::Op cx = b.Node("Conv", {px.out, b.Floats(hint + "/kernel_x", {c, 1, 1, taps}, k)},
                          hint + "/x");
  AttrInts(cx.node, "kernel_shape", {1, taps});
  AttrInt(cx.node, "group", c);
  Builder::Op py = b.Node("Gather", {cx.out, b.Ints(hint + "/rows", {h + 2 * r}, ih)}, hint + "/pad_y");
  AttrInt(py.node, "axis", 2);
  Builder::Op cy = b.Node("Conv", {py.out, b.Floats(hint + "/kernel_y", {c, 1, taps, 1}, k)}, hint);
  AttrInts(cy.node, "kernel_shape", {taps, 1});
  AttrInt(cy.node, "group", c);
  return cy.out;
}

// The LCN kernel exactly as image/preprocess.cc computes it (double, then float).
std::vector<float> LcnKernel(float sigma) {
  const int r = std::max(1, static_cast<int>(std::ceil(3.0f * sigma)));
  std::vector<float> k(size_t(2 * r + 1));
  double sum = 0;
  for (int i = 0; i <= 2 * r; ++i) {
    const double d = i - r;
    sum += std::exp(-d * d / (2.0 * sigma * sigma));
  }
  for (int i = 0; i <= 2 * r; ++i) {
    const double d = i - r;
    k[size_t(i)] = static_cast<float>(std::exp(-d * d / (2.0 * sigma * sigma)) / sum);
  }
  return k;
}

// image -> the network input (image/preprocess.cc: MeanStd / LocalContrast).
std::string EmitPreprocess(Builder& b, const PreprocessConfig& pre, const Shape& in,
                           InputMode mode) {
  std::string x = kInputName;
  if (mode == InputMode::kNormalized) return x;
  if (mode == InputMode::kUnit) x = b.Node("Mul", {x, b.Scalar(255.0f)}, "pre/to_pixels").out;
  std::vector<float> mean(size_t(in.c)), stdv(size_t(in.c));
  for (int c = 0; c < in.c; ++c) {
    mean[size_t(c)] = pre.mean[c];
    stdv[size_t(c)] = pre.std[c];
  }
  if (pre.norm == NormMode::kLocalContrast) {
    // v = (x - channel mean) * scale; v -= blur(v); v / sqrt(max(blur(v^2), 0) + eps).
    Builder::Op m = b.Node("ReduceMean", {x}, "pre/lcn/channel_mean");
    AttrInts(m.node, "axes", {2, 3});
    AttrInt(m.node, "keepdims", 1);
    const std::string c = b.Node("Sub", {x, m.out}, "pre/lcn/centred").out;
    const std::string v = b.Node("Mul", {c, b.Scalar(pre.scale)}, "pre/lcn/scaled").out;
    const std::vector<float> k = LcnKernel(pre.lcn_sigma);
    const std::string mu = EmitBlur(b, v, in.c, in.h, in.w, k, BlurBorder::kReflect, "pre/lcn/blur");
    const std::string hp = b.Node("Sub", {v, mu}, "pre/lcn/highpass").out;
    const std::string sq = b.Node("Mul", {hp, hp}, "pre/lcn/square").out;
    const std::string var = EmitBlur(b, sq, in.c, in.h, in.w, k, BlurBorder::kReflect, "pre/lcn/blur_sq");
    const std::string pos = b.Node("Max", {var, b.Scalar(0.0f)}, "pre/lcn/var").out;
    const std::string eps = b.Node("Add", {pos, b.Scalar(pre.lcn_eps)}, "pre/lcn/var_eps").out;
    const std::string den = b.Node("Sqrt", {eps}, "pre/lcn/sd").out;
    x = b.Node("Div", {hp, den}, "pre/lcn").out;
  } else {
    x = b.Node("Mul", {x, b.Scalar(pre.scale)}, "pre/scale").out;
  }
  x = b.Node("Sub", {x, b.Floats("pre/mean", {1, in.c, 1, 1}, mean)}, "pre/sub_mean").out;
  return b.Node("Div", {x, b.Floats("pre/std", {1, in.c, 1, 1}, stdv)}, "pre/normalized").out;
}

}  // namespace

Result<ExportResult> ExportOnnx(const uint8_t* bytes, size_t size, const ExportOptions& options) {
  FLAWLENS_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, LoadModel(bytes, size));
  const Model& m = *model;
  const Graph& g = m.graph;
  const PreprocessConfig& pre = m.preprocess;
  const PostprocessConfig& post = m.postprocess;
  const Calibration& cal = m.calibration;
  const Shape& in = g.input;
  const Shape& map = g.output_shape();
  const std::string out_name = g.output == 0 ? "input" : g.nodes[size_t(g.output - 1)].name;
  if (map.c != 1) {
    return MakeError(ErrorCode::kBadGraph,
                     "network output '%s' has %d channels; only a detector (a 1-channel anomaly "
                     "map or a single score) can be exported (a backbone: teach a detector on it "
                     "first, with flawlens train --backbone or the page)",
                     out_name.c_str(), map.c);
  }
  if (pre.padded()) {
    return MakeError(ErrorCode::kUnsupported,
                     "preprocess.geometry '%s' cannot be exported: which map cells are scored "
                     "and their edge calibration depend on each image's shape (train with "
                     "--geometry stretch to export)",
                     pre.geometry_name());
  }

  onnx::ModelProto proto;
  proto.set_ir_version(kIrVersion);
  onnx::OperatorSetIdProto* opset = proto.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  proto.set_producer_name("flawlens");
  proto.set_producer_version("export-onnx 1");
  proto.set_model_version(1);
  proto.set_doc_string("flawlens model '" + m.name +
                       "': image -> anomaly map and score (see metadata_props 'metadata')");
  onnx::GraphProto* gp = proto.mutable_graph();
  gp->set_name(m.name);
  Builder b(gp);
  for (const char* reserved : {kInputName, kScoreName, kMapName, kLabelName}) b.Reserve(reserved);
  b.ValueInfo(gp->add_input(), kInputName, Nchw(in));

  // Only the nodes the output depends on (a backbone may keep other branches).
  std::vector<bool> live(g.nodes.size() + 1, false);
  live[size_t(g.output)] = true;
  for (size_t i = g.nodes.size(); i-- > 0;) {
    if (!live[i + 1]) continue;
    for (int v : g.nodes[i].inputs) live[size_t(v)] = true;
  }
  std::vector<std::string> values(g.nodes.size() + 1);
  values[0] = EmitPreprocess(b, pre, in, options.input);
  int engine_nodes = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!live[i + 1]) continue;
    FLAWLENS_ASSIGN_OR_RETURN(values[i + 1], EmitNode(b, g, i, values));
    b.ValueInfo(gp->add_value_info(), values[i + 1], Nchw(g.shapes[i + 1]));
    ++engine_nodes;
  }

  // Postprocessing (detector.cc), then the score calibration.
  std::string x = values[size_t(g.output)];
  const int h = map.h, w = map.w, cells = h * w;
  if (post.sigmoid) x = b.Node("Sigmoid", {x}, "post/sigmoid").out;
  if (post.blur_sigma > 0 && cells > 1) {
    x = EmitBlur(b, x, 1, h, w, GaussianKernel(post.blur_sigma), BlurBorder::kReflect101,
                 "post/blur");
  }
  if (post.cell_mean.data) {
    x = b.Node("Sub", {x, b.Floats("post/cell_mean", {1, 1, h, w}, post.cell_mean.data, size_t(cells))},
               "post/cell_centred")
            .out;
  }
  if (post.cell_std.data) {
    x = b.Node("Div", {x, b.Floats("post/cell_std", {1, 1, h, w}, post.cell_std.data, size_t(cells))},
               "post/cell_calibrated")
            .out;
  }
  if (post.edge_mean.data || post.edge_std.data) {
    // Without a fixed pixel scale the kept map is the whole map: the edge
    // tables become per-cell tables.
    const TensorRef& ref = post.edge_mean.data ? post.edge_mean : post.edge_std;
    const int s = static_cast<int>(ref.shape[0]);
    std::vector<float> em(static_cast<size_t>(cells)), es(static_cast<size_t>(cells));
    for (int y = 0; y < h; ++y) {
      for (int xx = 0; xx < w; ++xx) {
        const int e = EdgeTableIndex(y, h, s) * s + EdgeTableIndex(xx, w, s);
        if (post.edge_mean.data) em[size_t(y * w + xx)] = post.edge_mean.data[e];
        if (post.edge_std.data) es[size_t(y * w + xx)] = post.edge_std.data[e];
      }
    }
    if (post.edge_mean.data) {
      x = b.Node("Sub", {x, b.Floats("post/edge_mean", {1, 1, h, w}, em)}, "post/edge_centred").out;
    }
    if (post.edge_std.data) {
      x = b.Node("Div", {x, b.Floats("post/edge_std", {1, 1, h, w}, es)}, "post/edge_calibrated").out;
    }
  }
  const std::string flat = b.Node("Reshape", {x, b.Shape({-1, cells})}, "post/cells").out;
  std::string raw;
  if (post.reduce == ScoreReduce::kMax || post.reduce == ScoreReduce::kMean) {
    Builder::Op r = b.Node(post.reduce == ScoreReduce::kMax ? "ReduceMax" : "ReduceMean", {flat},
                           "post/raw_score");
    AttrInts(r.node, "axes", {1});
    AttrInt(r.node, "keepdims", 0);
    raw = r.out;
  } else {
    const int k = std::clamp(static_cast<int>(std::ceil(post.topk_fraction * cells)), 1, cells);
    Builder::Op top = b.Node("TopK", {flat, b.Ints("post/k", {1}, {k})}, "post/top_cells");
    AttrInt(top.node, "axis", 1);
    top.node->add_output(b.Fresh("post/top_cells_index"));
    Builder::Op r = b.Node("ReduceMean", {top.out}, "post/raw_score");
    AttrInts(r.node, "axes", {1});
    AttrInt(r.node, "keepdims", 0);
    raw = r.out;
  }
  // (v - offset) * (1 / scale), the detector's float arithmetic.
  const std::string offset = b.Scalar(cal.offset), inv_scale = b.Scalar(1.0f / cal.scale);
  const std::string sc = b.Node("Sub", {raw, offset}, "post/score_centred").out;
  b.Node("Mul", {sc, inv_scale}, "", kScoreName);
  const std::string mc = b.Node("Sub", {x, offset}, "post/map_centred").out;
  b.Node("Mul", {mc, inv_scale}, "", kMapName);
  b.Node("GreaterOrEqual", {kScoreName, b.Scalar(cal.threshold)}, "", kLabelName);
  b.ValueInfo(gp->add_output(), kScoreName, {-1});
  b.ValueInfo(gp->add_output(), kMapName, {-1, 1, h, w});
  b.ValueInfo(gp->add_output(), kLabelName, {-1}, onnx::TensorProto::BOOL);

  // Metadata: anomalib's keys one by one (strings as they are, the rest as
  // JSON), the whole document under "metadata", and the model's own sections.
  Result<SafetensorsHeader> header = ReadSafetensorsHeader(bytes, size);
  const std::map<std::string, std::string> sections =
      header.ok() ? header->metadata : std::map<std::string, std::string>();
  const Json meta = internal::BuildMetadata(m, options.input, in, map);
  auto add_prop = [&](const std::string& key, const std::string& value) {
    onnx::StringStringEntryProto* p = proto.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  };
  for (auto it = meta.begin(); it != meta.end(); ++it) {
    add_prop(it.key(), it->is_string() ? it->get<std::string>() : it->dump());
  }
  add_prop("metadata", meta.dump());
  for (const char* key : {"preprocess", "postprocess", "calibration", "card"}) {
    auto it = sections.find(key);
    if (it != sections.end()) add_prop(std::string("flawlens.") + key, it->second);
  }

  ExportResult result;
  if (!proto.SerializeToString(&result.onnx)) {
    return MakeError(ErrorCode::kInternal, "the ONNX model could not be serialised (%zu bytes)",
                     proto.ByteSizeLong());
  }
  result.input_c = in.c;
  result.input_h = in.h;
  result.input_w = in.w;
  result.map_h = h;
  result.map_w = w;
  result.engine_nodes = engine_nodes;
  result.onnx_nodes = gp->node_size();
  result.initializer_floats = b.floats();
  result.metadata_json = meta.dump(2);
  return result;
}

Result<std::vector<float>> ExportInput(const Model& model, InputMode mode, const ImageView& image,
                                       const RectF& roi) {
  if (model.preprocess.padded()) {
    return MakeError(ErrorCode::kUnsupported, "preprocess.geometry '%s' has no exported input",
                     model.preprocess.geometry_name());
  }
  PreprocessConfig config = model.preprocess;
  if (mode != InputMode::kNormalized) {
    config.norm = NormMode::kMeanStd;
    config.scale = mode == InputMode::kUnit ? 1.0f / 255.0f : 1.0f;
    for (int c = 0; c < 3; ++c) {
      config.mean[c] = 0.0f;
      config.std[c] = 1.0f;
    }
  }
  const Shape& in = model.graph.input;
  std::vector<float> nhwc(static_cast<size_t>(in.elements()));
  FLAWLENS_RETURN_IF_ERROR(Preprocess(image, config, roi, nhwc.data(), nullptr, nullptr));
  std::vector<float> nchw(nhwc.size());
  const size_t hw = size_t(in.h) * in.w;
  for (size_t p = 0; p < hw; ++p)
    for (int c = 0; c < in.c; ++c) nchw[size_t(c) * hw + p] = nhwc[p * in.c + size_t(c)];
  return nchw;
}

}  // namespace flawlens::onnx_export
