#include "train/adapt/graph_module.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <limits>

#include "model/safetensors.h"

namespace flawlens::adapt {
namespace {

namespace F = torch::nn::functional;
using json = nlohmann::json;

// OHWI (the file) <-> OIHW (LibTorch).
torch::Tensor OhwiToOihw(const TensorRef& t, int out_c, int kh, int kw, int in_c) {
  return torch::from_blob(const_cast<float*>(t.data), {out_c, kh, kw, in_c}, torch::kFloat32)
      .permute({0, 3, 1, 2})
      .contiguous()
      .clone();
}

std::vector<float> TensorData(const torch::Tensor& t) {
  torch::Tensor c = t.detach().contiguous().to(torch::kFloat32);
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// Zero padding of the spatial axes, [top, left, bottom, right].
torch::Tensor PadSpatial(const torch::Tensor& x, const Node& n, double value = 0.0) {
  if (n.pad_top == 0 && n.pad_left == 0 && n.pad_bottom == 0 && n.pad_right == 0) return x;
  return F::pad(x, F::PadFuncOptions({n.pad_left, n.pad_right, n.pad_top, n.pad_bottom})
                       .mode(torch::kConstant)
                       .value(value));
}

}  // namespace

torch::Tensor ApplyActivation(const torch::Tensor& x, Activation act, float alpha) {
  switch (act) {
    case Activation::kNone: return x;
    case Activation::kRelu: return torch::relu(x);
    case Activation::kLeakyRelu: return F::leaky_relu(x, F::LeakyReLUFuncOptions().negative_slope(alpha));
    case Activation::kSilu: return x * torch::sigmoid(x);
    case Activation::kSigmoid: return torch::sigmoid(x);
    case Activation::kRelu6: return torch::clamp(x, 0.0, 6.0);
    case Activation::kHardSwish: return x * torch::clamp(x + 3.0, 0.0, 6.0) * alpha;
    case Activation::kHardSigmoid: return torch::clamp(x + 3.0, 0.0, 6.0) * alpha;
  }
  return x;
}

Result<ModelFileParts> ReadModelFileParts(const std::vector<uint8_t>& bytes) {
  FLAWLENS_ASSIGN_OR_RETURN(SafetensorsHeader header, ReadSafetensorsHeader(bytes.data(), bytes.size()));
  ModelFileParts parts;
  auto text = [&](const char* key, std::string* out) {
    auto it = header.metadata.find(key);
    if (it != header.metadata.end()) *out = it->second;
  };
  text("graph", &parts.spec.graph_json);
  text("preprocess", &parts.spec.preprocess_json);
  text("postprocess", &parts.spec.postprocess_json);
  text("calibration", &parts.spec.calibration_json);
  text("card", &parts.spec.card_json);
  const uint8_t* data = bytes.data() + header.data_offset;
  const uint64_t data_size = bytes.size() - header.data_offset;
  const JsonValue& entries = header.json;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries.keys()[i] == "__metadata__") continue;
    const JsonValue& e = entries[i];
    ModelTensor t;
    t.name = entries.keys()[i];
    const JsonValue* shape = e.Find("shape");
    const JsonValue* offsets = e.Find("data_offsets");
    if (shape == nullptr || offsets == nullptr || !shape->is_array() || !offsets->is_array())
      return MakeError(ErrorCode::kBadHeader, "tensor '%s': no shape or data_offsets", t.name.c_str());
    for (const JsonValue& d : shape->items()) {
      int64_t v = 0;
      if (!d.ToInt64(0, std::numeric_limits<int64_t>::max(), &v))
        return MakeError(ErrorCode::kBadHeader, "tensor '%s': bad shape", t.name.c_str());
      t.shape.push_back(v);
    }
    int64_t off[2] = {-1, -1};
    const int64_t kMax = std::numeric_limits<int64_t>::max();
    if (offsets->size() != 2 || !(*offsets)[0].ToInt64(0, kMax, &off[0]) ||
        !(*offsets)[1].ToInt64(0, kMax, &off[1]) || off[0] > off[1] ||
        uint64_t(off[1]) > data_size || (off[1] - off[0]) % 4 != 0)
      return MakeError(ErrorCode::kBadHeader, "tensor '%s': bad data_offsets", t.name.c_str());
    t.data.resize(size_t(off[1] - off[0]) / 4);
    std::memcpy(t.data.data(), data + off[0], size_t(off[1] - off[0]));
    parts.spec.tensors.push_back(std::move(t));
  }
  json graph = json::parse(parts.spec.graph_json, nullptr, false);
  if (graph.is_discarded() || !graph.contains("nodes"))
    return MakeError(ErrorCode::kBadGraph, "model graph is not a JSON object with nodes");
  for (const json& node : graph["nodes"]) {
    parts.weight_of.push_back(node.value("weight", std::string()));
    parts.bias_of.push_back(node.value("bias", std::string()));
  }
  return parts;
}

Result<std::shared_ptr<GraphModuleImpl>> GraphModuleImpl::Create(const Model& model) {
  std::shared_ptr<GraphModuleImpl> m(new GraphModuleImpl());
  m->graph_ = model.graph;
  const Graph& g = m->graph_;
  m->weight_.resize(g.nodes.size());
  m->bias_.resize(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    const Shape& in = g.shapes[size_t(n.inputs.empty() ? 0 : n.inputs[0])];
    switch (n.op) {
      case OpType::kConv2d:
        m->weight_[i] = m->register_parameter(
            "w" + std::to_string(i),
            OhwiToOihw(n.weight, n.out_channels, n.kernel_h, n.kernel_w, in.c / n.groups));
        break;
      case OpType::kDense: {
        // Columns in NHWC-flatten order, kept as they are: forward flattens NHWC.
        m->weight_[i] = m->register_parameter(
            "w" + std::to_string(i),
            torch::from_blob(const_cast<float*>(n.weight.data), {n.out_channels, in.elements()})
                .clone());
        break;
      }
      case OpType::kPositionMahalanobis:
      case OpType::kActivation:
      case OpType::kMaxPool2d:
      case OpType::kAvgPool2d:
      case OpType::kGlobalAvgPool:
      case OpType::kUpsample:
      case OpType::kConcat:
      case OpType::kAdd:
      case OpType::kReduceChannels:
      case OpType::kMul:
        break;
      default:
        return MakeError(ErrorCode::kUnsupported, "node '%s': op %s has no LibTorch form here",
                         n.name.c_str(), OpTypeName(n.op));
    }
    if (n.bias.data != nullptr) {
      torch::Tensor b =
          torch::from_blob(const_cast<float*>(n.bias.data), {n.bias.elements()}).clone();
      if (n.op == OpType::kPositionMahalanobis) {
        // Density heads are fitted, not trained: buffers.
        m->weight_[i] = m->register_buffer(
            "w" + std::to_string(i),
            torch::from_blob(const_cast<float*>(n.weight.data), {n.weight.elements()}).clone());
        m->bias_[i] = m->register_buffer("b" + std::to_string(i), b);
      } else {
        m->bias_[i] = m->register_parameter("b" + std::to_string(i), b);
      }
    }
  }
  return m;
}

int GraphModuleImpl::FindNode(const std::string& name) const {
  for (size_t i = 0; i < graph_.nodes.size(); ++i)
    if (graph_.nodes[i].name == name) return int(i);
  return -1;
}

int64_t GraphModuleImpl::SetTrainableFrom(int first_node) {
  int64_t count = 0;
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    const bool train = int(i) >= first_node && graph_.nodes[i].op != OpType::kPositionMahalanobis;
    for (torch::Tensor* t : {&weight_[i], &bias_[i]}) {
      if (!t->defined()) continue;
      t->set_requires_grad(train);
      if (train) count += t->numel();
    }
  }
  return count;
}

std::vector<torch::Tensor> GraphModuleImpl::values(const torch::Tensor& x, int last) {
  std::vector<torch::Tensor> v(1, x);
  return values_from(std::move(v), 0, last);
}

std::vector<torch::Tensor> GraphModuleImpl::values_from(std::vector<torch::Tensor> v,
                                                        int first_node, int last) {
  const Graph& g = graph_;
  if (last < 0) last = g.output;
  v.resize(std::max(v.size(), size_t(last) + 1));
  for (int i = first_node; i + 1 <= last; ++i) {
    const Node& n = g.nodes[size_t(i)];
    const torch::Tensor& a = v[size_t(n.inputs[0])];
    torch::Tensor y;
    switch (n.op) {
      case OpType::kConv2d: {
        y = F::conv2d(PadSpatial(a, n), weight_[size_t(i)],
                      F::Conv2dFuncOptions()
                          .bias(bias_[size_t(i)])
                          .stride({n.stride_h, n.stride_w})
                          .dilation({n.dilation_h, n.dilation_w})
                          .groups(n.groups));
        y = ApplyActivation(y, n.activation, n.alpha);
        break;
      }
      case OpType::kDense: {
        torch::Tensor flat = a.permute({0, 2, 3, 1}).reshape({a.size(0), -1});
        y = torch::matmul(flat, weight_[size_t(i)].t());
        if (bias_[size_t(i)].defined()) y = y + bias_[size_t(i)];
        y = ApplyActivation(y, n.activation, n.alpha).view({a.size(0), -1, 1, 1});
        break;
      }
      case OpType::kActivation: y = ApplyActivation(a, n.activation, n.alpha); break;
      case OpType::kMaxPool2d:
        y = F::max_pool2d(PadSpatial(a, n, -std::numeric_limits<double>::infinity()),
                          F::MaxPool2dFuncOptions({n.kernel_h, n.kernel_w})
                              .stride({n.stride_h, n.stride_w})
                              .dilation({n.dilation_h, n.dilation_w}));
        break;
      case OpType::kAvgPool2d: {
        auto opt = F::AvgPool2dFuncOptions({n.kernel_h, n.kernel_w}).stride({n.stride_h, n.stride_w});
        y = F::avg_pool2d(PadSpatial(a, n), opt);
        if (!n.count_include_pad) {
          torch::Tensor ones = torch::ones({1, 1, a.size(2), a.size(3)}, a.options());
          y = y / F::avg_pool2d(PadSpatial(ones, n), opt);
        }
        break;
      }
      case OpType::kGlobalAvgPool: y = a.mean({2, 3}, /*keepdim=*/true); break;
      case OpType::kUpsample: {
        std::vector<int64_t> size = {a.size(2) * n.scale_h, a.size(3) * n.scale_w};
        auto opt = F::InterpolateFuncOptions().size(size);
        if (n.upsample_mode == UpsampleMode::kBilinear) {
          opt.mode(torch::kBilinear).align_corners(false);
        } else {
          opt.mode(torch::kNearest);
        }
        y = F::interpolate(a, opt);
        break;
      }
      case OpType::kConcat: {
        std::vector<torch::Tensor> parts;
        for (int id : n.inputs) parts.push_back(v[size_t(id)]);
        y = torch::cat(parts, 1);
        break;
      }
      case OpType::kAdd:
        y = ApplyActivation(a + v[size_t(n.inputs[1])], n.activation, n.alpha);
        break;
      case OpType::kMul:
        y = ApplyActivation(a * v[size_t(n.inputs[1])], n.activation, n.alpha);
        break;
      case OpType::kReduceChannels:
        switch (n.reduce_mode) {
          case ReduceMode::kSumSquares: y = (a * a).sum(1, true); break;
          case ReduceMode::kMin: y = std::get<0>(a.min(1, true)); break;
          case ReduceMode::kMax: y = std::get<0>(a.max(1, true)); break;
          case ReduceMode::kMean: y = a.mean(1, true); break;
        }
        break;
      case OpType::kPositionMahalanobis: {
        const int64_t h = a.size(2), w = a.size(3), d = a.size(1);
        torch::Tensor diff = a.permute({0, 2, 3, 1}) - bias_[size_t(i)].view({h, w, d});
        torch::Tensor white =
            torch::einsum("hwkj,nhwj->nhwk", {weight_[size_t(i)].view({h, w, d, d}), diff});
        y = (white * white).sum(-1).unsqueeze(1);
        break;
      }
    }
    v[size_t(i) + 1] = y;
  }
  return v;
}

torch::Tensor GraphModuleImpl::forward(const torch::Tensor& x) { return values(x).back(); }

Status GraphModuleImpl::ExportWeights(ModelFileParts* parts) const {
  if (parts->weight_of.size() != graph_.nodes.size())
    return MakeError(ErrorCode::kBadGraph, "model file has %zu nodes, the module %zu",
                     parts->weight_of.size(), graph_.nodes.size());
  auto put = [&](const std::string& name, std::vector<float> data) -> Status {
    for (ModelTensor& t : parts->spec.tensors) {
      if (t.name != name) continue;
      if (t.data.size() != data.size())
        return MakeError(ErrorCode::kBadGraph, "tensor '%s': %zu values in the file, %zu trained",
                         name.c_str(), t.data.size(), data.size());
      t.data = std::move(data);
      return Status::Ok();
    }
    return MakeError(ErrorCode::kBadGraph, "tensor '%s' is not in the model file", name.c_str());
  };
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    const Node& n = graph_.nodes[i];
    if (n.op != OpType::kConv2d && n.op != OpType::kDense) continue;
    torch::Tensor w = weight_[i];
    if (n.op == OpType::kConv2d) w = w.permute({0, 2, 3, 1});  // OIHW -> OHWI
    FLAWLENS_RETURN_IF_ERROR(put(parts->weight_of[i], TensorData(w)));
    if (bias_[i].defined()) FLAWLENS_RETURN_IF_ERROR(put(parts->bias_of[i], TensorData(bias_[i])));
  }
  return Status::Ok();
}

}  // namespace flawlens::adapt
