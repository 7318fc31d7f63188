// The weights manifest and its shards -> decoded constants (tfjs_internal.h).
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/limits.h"
#include "import/tfjs_internal.h"

namespace flawlens::tfjs::internal {
namespace {

uint32_t ReadU32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// ---- weights ---------------------------------------------------------------
struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t elements = 1;
  std::string dtype;  // float32 | int32
  std::string quant;  // "", float16, uint8, uint16
  double qmin = 0, qscale = 1;
  uint64_t bytes = 0;
};

Status ParseWeightSpec(const json& w, size_t group, WeightSpec* out) {
  const std::string where = "weights manifest group " + std::to_string(group);
  if (!w.is_object())
    return Error(ErrorCode::kBadHeader, where + ": a weight entry is not an object");
  auto name = w.find("name");
  auto shape = w.find("shape");
  auto dtype = w.find("dtype");
  if (name == w.end() || !name->is_string() || shape == w.end() || !shape->is_array() ||
      dtype == w.end() || !dtype->is_string()) {
    return Error(ErrorCode::kBadHeader, where + ": a weight entry needs name, shape and dtype");
  }
  out->name = name->get<std::string>();
  const std::string wn = "weight '" + out->name + "'";
  if (shape->size() > 8)
    return Error(ErrorCode::kBadShape,
                 wn + ": rank " + std::to_string(shape->size()) + " is above 8");
  for (const json& d : *shape) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > kMaxTensorElements) {
      return Error(ErrorCode::kLimitExceeded,
                   wn + ": dimension " + d.dump(-1, ' ', false, json::error_handler_t::replace) +
                       " is not an integer in [0, " + std::to_string(kMaxTensorElements) + "]");
    }
    out->shape.push_back(d.get<int64_t>());
    if (!CheckedMul(out->elements, out->shape.back(), &out->elements) ||
        out->elements > kMaxTensorElements) {
      return Error(ErrorCode::kLimitExceeded,
                   wn + ": more than " + std::to_string(kMaxTensorElements) + " elements");
    }
  }
  out->dtype = dtype->get<std::string>();
  if (out->dtype != "float32" && out->dtype != "int32") {
    return Error(ErrorCode::kUnsupported,
                 wn + ": dtype '" + out->dtype + "' is not supported (float32, int32)");
  }
  int bytes_per = 4;
  auto q = w.find("quantization");
  if (q != w.end() && !q->is_null()) {
    if (!q->is_object())
      return Error(ErrorCode::kBadHeader, wn + ": quantization is not an object");
    auto qd = q->find("dtype");
    if (qd == q->end() || !qd->is_string())
      return Error(ErrorCode::kBadHeader, wn + ": quantization has no dtype");
    out->quant = qd->get<std::string>();
    if (out->dtype != "float32") {
      return Error(ErrorCode::kUnsupported,
                   wn + ": quantized " + out->dtype + " weights are not supported");
    }
    if (out->quant == "float16") {
      bytes_per = 2;
    } else if (out->quant == "uint8" || out->quant == "uint16") {
      bytes_per = out->quant == "uint8" ? 1 : 2;
      auto mn = q->find("min");
      auto sc = q->find("scale");
      if (mn == q->end() || sc == q->end() || !mn->is_number() || !sc->is_number() ||
          !std::isfinite(mn->get<double>()) || !std::isfinite(sc->get<double>())) {
        return Error(ErrorCode::kBadHeader,
                     wn + ": " + out->quant + " quantization needs finite 'min' and 'scale'");
      }
      out->qmin = mn->get<double>();
      out->qscale = sc->get<double>();
    } else {
      return Error(ErrorCode::kUnsupported, wn + ": quantization dtype '" + out->quant +
                                                "' is not supported (float16, uint8, uint16)");
    }
  }
  out->bytes = static_cast<uint64_t>(out->elements) * bytes_per;
  return Status::Ok();
}

Status DecodeWeight(const WeightSpec& s, const uint8_t* p, Constant* c) {
  c->shape = s.shape;
  c->elements = s.elements;
  if (s.dtype == "int32") {
    c->is_int = true;
    c->i.resize(s.elements);
    for (int64_t k = 0; k < s.elements; ++k) c->i[k] = static_cast<int32_t>(ReadU32(p + 4 * k));
    return Status::Ok();
  }
  c->f.resize(s.elements);
  for (int64_t k = 0; k < s.elements; ++k) {
    float v;
    if (s.quant == "float16") {
      v = import::HalfToFloat(static_cast<uint16_t>(p[2 * k] | p[2 * k + 1] << 8));
    } else if (s.quant == "uint8") {
      v = static_cast<float>(s.qmin + s.qscale * p[k]);
    } else if (s.quant == "uint16") {
      v = static_cast<float>(s.qmin + s.qscale * (p[2 * k] | p[2 * k + 1] << 8));
    } else {
      const uint32_t bits = ReadU32(p + 4 * k);
      std::memcpy(&v, &bits, 4);
    }
    if (!std::isfinite(v)) {
      return Error(ErrorCode::kNonFinite, "weight '" + s.name + "': element " + std::to_string(k) +
                                              " is " + (std::isnan(v) ? "NaN" : "infinite"));
    }
    c->f[k] = v;
  }
  return Status::Ok();
}

}  // namespace

Status LoadWeights(const json& manifest, const ShardReader& read_shard,
                   std::map<std::string, Constant>* consts) {
  if (!manifest.is_array()) return Error(ErrorCode::kBadHeader, "weightsManifest is not an array");
  // Validate every group's entries (sizes, limits) before reading any shard.
  std::vector<std::vector<WeightSpec>> groups;
  std::vector<std::vector<std::string>> paths;
  uint64_t total = 0;
  size_t shard_count = 0;
  for (size_t g = 0; g < manifest.size(); ++g) {
    const json& group = manifest[g];
    const std::string where = "weights manifest group " + std::to_string(g);
    if (!group.is_object()) return Error(ErrorCode::kBadHeader, where + " is not an object");
    auto p = group.find("paths");
    auto w = group.find("weights");
    if (p == group.end() || !p->is_array() || w == group.end() || !w->is_array()) {
      return Error(ErrorCode::kBadHeader, where + " needs 'paths' and 'weights' arrays");
    }
    paths.emplace_back();
    for (const json& path : *p) {
      if (!path.is_string())
        return Error(ErrorCode::kBadHeader, where + ": a path is not a string");
      if (++shard_count > static_cast<size_t>(kMaxShards)) {
        return Error(ErrorCode::kLimitExceeded,
                     "more than " + std::to_string(kMaxShards) + " weight shards");
      }
      paths.back().push_back(path.get<std::string>());
    }
    groups.emplace_back();
    for (const json& entry : *w) {
      WeightSpec spec;
      Status st = ParseWeightSpec(entry, g, &spec);
      if (!st.ok()) return st;
      total += spec.bytes;
      if (total > kMaxWeightBytes) {
        return Error(ErrorCode::kLimitExceeded,
                     "the weights need more than " + std::to_string(kMaxWeightBytes) + " bytes");
      }
      groups.back().push_back(std::move(spec));
    }
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<uint8_t> data;
    std::string shard_list;
    for (const std::string& path : paths[g]) {
      Result<std::vector<uint8_t>> shard = read_shard(path);
      if (!shard.ok()) return shard.status();
      if (data.size() + shard->size() > kMaxWeightBytes) {
        return Error(ErrorCode::kLimitExceeded,
                     "weight shards hold more than " + std::to_string(kMaxWeightBytes) + " bytes");
      }
      data.insert(data.end(), shard->begin(), shard->end());
      shard_list += (shard_list.empty() ? "'" : ", '") + path + "'";
    }
    uint64_t need = 0;
    for (const WeightSpec& s : groups[g]) need += s.bytes;
    if (data.size() < need) {
      return Error(ErrorCode::kTruncated,
                   "weights manifest group " + std::to_string(g) + ": shard(s) " +
                       (shard_list.empty() ? "(none)" : shard_list) + " hold " +
                       std::to_string(data.size()) + " bytes, the manifest's weights need " +
                       std::to_string(need));
    }
    if (data.size() > need) {
      return Error(ErrorCode::kBadShape,
                   "weights manifest group " + std::to_string(g) + ": shard(s) " + shard_list +
                       " hold " + std::to_string(data.size()) + " bytes, more than the " +
                       std::to_string(need) +
                       " the manifest's weights describe (shapes disagree with the data)");
    }
    uint64_t offset = 0;
    for (const WeightSpec& s : groups[g]) {
      if (consts->count(s.name)) {
        return Error(ErrorCode::kBadHeader,
                     "weight '" + s.name + "' appears twice in the manifest");
      }
      Constant c;
      Status st = DecodeWeight(s, data.data() + offset, &c);
      if (!st.ok()) return st;
      offset += s.bytes;
      (*consts)[s.name] = std::move(c);
    }
  }
  return Status::Ok();
}


Status CheckConstShapes(const std::vector<TfNode>& nodes,
                        const std::map<std::string, Constant>& consts) {
  for (const TfNode& n : nodes) {
    if (n.op != "Const") continue;
    auto c = consts.find(n.name);
    if (c == consts.end()) continue;  // reported if it is on the path
    const json* value = Attr(n, "value");
    if (!value || !value->is_object() || !value->contains("tensor")) continue;
    const json& tensor = (*value)["tensor"];
    if (!tensor.is_object() || !tensor.contains("tensorShape")) continue;
    const json& ts = tensor["tensorShape"];
    if (!ts.is_object()) continue;
    std::vector<int64_t> declared;
    if (ts.contains("dim") && ts["dim"].is_array()) {
      for (const json& d : ts["dim"]) {
        int64_t size = 0;  // protobuf JSON omits a zero size
        if (d.is_object() && d.contains("size")) {
          const json& s = d["size"];
          if (s.is_string())
            size = std::atoll(s.get<std::string>().c_str());
          else if (s.is_number_integer())
            size = s.get<int64_t>();
        }
        declared.push_back(size);
      }
    }
    if (declared != c->second.shape) {
      auto fmt = [](const std::vector<int64_t>& s) {
        std::string out = "[";
        for (size_t k = 0; k < s.size(); ++k) out += (k ? ", " : "") + std::to_string(s[k]);
        return out + "]";
      };
      return Error(ErrorCode::kBadShape, "const '" + n.name + "' declares shape " + fmt(declared) +
                                             " but the weights manifest has " +
                                             fmt(c->second.shape));
    }
  }
  return Status::Ok();
}
}  // namespace flawlens::tfjs::internal
