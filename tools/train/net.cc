#include "train/net.h"

#include <nlohmann/json.hpp>

#include <cmath>

namespace flawlens::train {
namespace {

namespace F = torch::nn::functional;

std::vector<float> ToVector(const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kFloat32).contiguous().cpu();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace

ConvBnImpl::ConvBnImpl(int in, int out, int kernel_, int stride_, int dilation_, bool relu_)
    : kernel(kernel_), stride(stride_), dilation(dilation_), relu(relu_) {
  pad = dilation * (kernel - 1) / 2;
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                                       .stride(stride)
                                                       .padding(pad)
                                                       .dilation(dilation)
                                                       .bias(false)));
  bn = register_module("bn", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out)));
}

torch::Tensor ConvBnImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = bn(conv(x));
  return relu ? torch::relu(y) : y;
}

FlawNetImpl::FlawNetImpl(const NetConfig& c) : config(c) {
  int w = c.width;
  stem = register_module("stem", ConvBn(c.in_channels, w, 3, 2, 1, true));
  e1 = register_module("e1", ConvBn(w, w, 3, 1, 1, true));
  down2 = register_module("down2", ConvBn(w, 2 * w, 3, 2, 1, true));
  e2 = register_module("e2", ConvBn(2 * w, 2 * w, 3, 1, 1, true));
  down3 = register_module("down3", ConvBn(2 * w, 4 * w, 3, 2, 1, true));
  e3a = register_module("e3a", ConvBn(4 * w, 4 * w, 3, 1, 2, true));
  e3b = register_module("e3b", ConvBn(4 * w, 4 * w, 3, 1, 4, true));
  d2 = register_module("d2", ConvBn(6 * w, 2 * w, 1, 1, 1, true));
  d2b = register_module("d2b", ConvBn(2 * w, 2 * w, 3, 1, 1, true));
  head = register_module("head", torch::nn::Conv2d(torch::nn::Conv2dOptions(2 * w, 1, 1)));
  int f = feature_channels();
  dens_w = register_buffer("dens_w", torch::eye(f));
  dens_b = register_buffer("dens_b", torch::zeros({f}));
  combine = register_buffer("combine", torch::tensor({0.0f, 1.0f, 0.0f, 1.0f, 0.0f, 1.0f}));
  fine_w = register_buffer("fine_w", torch::eye(w));
  fine_b = register_buffer("fine_b", torch::zeros({w}));
  bank = register_buffer("bank", torch::zeros({std::max(1, c.bank), f}));
  int g = global_channels();
  glob_w = register_buffer("glob_w", torch::eye(g));
  glob_b = register_buffer("glob_b", torch::zeros({g}));
  glob_stats = register_buffer("glob_stats", torch::tensor({0.0f, 1.0f}));
}

int FlawNetImpl::feature_channels() const { return 4 * config.width; }
int FlawNetImpl::global_channels() const { return 9 * config.width; }

NetOutputs FlawNetImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = e1(stem(x));
  torch::Tensor f2 = e2(down2(h));
  torch::Tensor f3 = e3b(e3a(down3(f2)));
  torch::Tensor up = F::interpolate(
      f3, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0})
              .mode(torch::kBilinear).align_corners(false));
  torch::Tensor dec = d2b(d2(torch::cat({up, f2}, 1)));
  NetOutputs out;
  out.seg = head(dec);
  out.features = torch::cat({f2, dec}, 1);
  out.fine = h;
  out.f3 = f3;
  return out;
}

torch::Tensor FlawNetImpl::global_descriptor(const NetOutputs& o) {
  return torch::cat({o.fine.mean({2, 3}), o.features.mean({2, 3}), o.f3.mean({2, 3})}, 1);
}

torch::Tensor FlawNetImpl::global_distance(const torch::Tensor& descriptor) {
  torch::Tensor z = descriptor.mm(glob_w.t()) + glob_b;
  return (z * z).sum(1);
}

torch::Tensor FlawNetImpl::density_map(const torch::Tensor& features) {
  int f = feature_channels();
  torch::Tensor z = F::conv2d(features, dens_w.view({f, f, 1, 1}),
                              F::Conv2dFuncOptions().bias(dens_b));
  torch::Tensor sq = (z * z).sum(1, /*keepdim=*/true);
  if (config.bank <= 0) return sq;
  // min_k ||z - b_k||^2 = ||z||^2 + min_k (-2 b_k.z + ||b_k||^2)
  torch::Tensor d = F::conv2d(z, (-2.0 * bank).view({bank.size(0), f, 1, 1}),
                              F::Conv2dFuncOptions().bias((bank * bank).sum(1)));
  return std::get<0>(d.min(1, /*keepdim=*/true)) + sq;
}

torch::Tensor FlawNetImpl::fine_map(const torch::Tensor& fine) {
  int64_t w = fine_w.size(0);
  torch::Tensor z = F::conv2d(fine, fine_w.view({w, w, 1, 1}), F::Conv2dFuncOptions().bias(fine_b));
  return F::max_pool2d((z * z).sum(1, /*keepdim=*/true), F::MaxPool2dFuncOptions(2));
}

torch::Tensor FlawNetImpl::combine_maps(const torch::Tensor& seg, const torch::Tensor& dens,
                                        const torch::Tensor& fine, const torch::Tensor& glob) {
  torch::Tensor m = config.seg_weight * (seg - combine[0]) / combine[1];
  if (config.density && density_fitted && dens.defined()) {
    m = m + config.density_weight * (dens - combine[2]) / combine[3];
  }
  if (config.fine_density && fine_fitted && fine.defined()) {
    m = m + config.density_weight * (fine - combine[4]) / combine[5];
  }
  if (config.global_weight > 0 && global_fitted && glob.defined()) {
    torch::Tensor t = config.global_weight * (glob - glob_stats[0]) / glob_stats[1];
    m = m + t.view({-1, 1, 1, 1});
  }
  return m;
}

torch::Tensor FlawNetImpl::forward_map(const torch::Tensor& x) {
  NetOutputs o = forward(x);
  torch::Tensor dens, fine, glob;
  if (config.density && density_fitted) dens = density_map(o.features);
  if (config.fine_density && fine_fitted) fine = fine_map(o.fine);
  if (config.global_weight > 0 && global_fitted) glob = global_distance(global_descriptor(o));
  return combine_maps(o.seg, dens, fine, glob);
}

// ---- export -----------------------------------------------------------------

namespace {

using nlohmann::json;

struct Exporter {
  ModelSpec* spec;
  json nodes = json::array();

  void AddTensor(const std::string& name, const torch::Tensor& t) {
    ModelTensor mt;
    mt.name = name;
    for (int64_t s : t.sizes()) mt.shape.push_back(s);
    mt.data = ToVector(t);
    spec->tensors.push_back(std::move(mt));
  }

  // conv2d node from a torch OIHW weight (converted to OHWI).
  void Conv(const std::string& name, const std::string& input, const torch::Tensor& w_oihw,
            const torch::Tensor& bias, int stride, int dilation, int pad, const char* act) {
    torch::Tensor w = w_oihw.permute({0, 2, 3, 1}).contiguous();
    AddTensor(name + ".weight", w);
    json n = {{"name", name},
              {"op", "conv2d"},
              {"inputs", {input}},
              {"out_channels", w.size(0)},
              {"kernel", {w.size(1), w.size(2)}},
              {"stride", {stride, stride}},
              {"dilation", {dilation, dilation}},
              {"pad", {pad, pad, pad, pad}},
              {"groups", 1},
              {"activation", act},
              {"weight", name + ".weight"}};
    if (bias.defined()) {
      AddTensor(name + ".bias", bias);
      n["bias"] = name + ".bias";
    }
    nodes.push_back(n);
  }

  void ConvBnNode(const std::string& name, const std::string& input, ConvBn& m) {
    torch::NoGradGuard ng;
    torch::Tensor gamma = m->bn->weight, beta = m->bn->bias;
    torch::Tensor mean = m->bn->running_mean, var = m->bn->running_var;
    double eps = m->bn->options.eps();
    torch::Tensor inv = gamma / torch::sqrt(var + eps);
    torch::Tensor w = m->conv->weight * inv.view({-1, 1, 1, 1});
    torch::Tensor b = beta - mean * inv;
    Conv(name, input, w, b, m->stride, m->dilation, m->pad, m->relu ? "relu" : "none");
  }

  void Simple(const json& n) { nodes.push_back(n); }
};

}  // namespace

void ExportNetwork(FlawNet& net, int input_h, int input_w, ModelSpec* spec) {
  torch::NoGradGuard ng;
  spec->tensors.clear();
  Exporter ex{spec};
  ex.ConvBnNode("stem", "input", net->stem);
  ex.ConvBnNode("e1", "stem", net->e1);
  ex.ConvBnNode("down2", "e1", net->down2);
  ex.ConvBnNode("e2", "down2", net->e2);
  ex.ConvBnNode("down3", "e2", net->down3);
  ex.ConvBnNode("e3a", "down3", net->e3a);
  ex.ConvBnNode("e3b", "e3a", net->e3b);
  ex.Simple({{"name", "up3"}, {"op", "upsample"}, {"inputs", {"e3b"}},
             {"mode", "bilinear"}, {"scale", {2, 2}}});
  ex.Simple({{"name", "cat3"}, {"op", "concat"}, {"inputs", {"up3", "e2"}}});
  ex.ConvBnNode("d2", "cat3", net->d2);
  ex.ConvBnNode("d2b", "d2", net->d2b);
  ex.Conv("seg", "d2b", net->head->weight, net->head->bias, 1, 1, 0, "none");

  const NetConfig& c = net->config;
  torch::Tensor comb = net->combine;
  // The standardised, weighted sum of the branch maps: one 1x1 conv over
  // their concatenation.
  std::vector<std::string> maps = {"seg"};
  std::vector<float> weights = {c.seg_weight / comb[1].item<float>()};
  float bias = -c.seg_weight * comb[0].item<float>() / comb[1].item<float>();
  if (c.density && net->density_fitted) {
    int f = net->feature_channels();
    ex.Simple({{"name", "features"}, {"op", "concat"}, {"inputs", {"e2", "d2b"}}});
    ex.Conv("dens_white", "features", net->dens_w.view({f, f, 1, 1}), net->dens_b, 1, 1, 0,
            "none");
    if (c.bank > 0) {
      torch::Tensor bk = net->bank;
      ex.Conv("bank", "dens_white", (-2.0 * bk).view({bk.size(0), f, 1, 1}), (bk * bk).sum(1), 1,
              1, 0, "none");
      ex.Simple({{"name", "bank_min"}, {"op", "reduce_channels"}, {"inputs", {"bank"}},
                 {"mode", "min"}});
      ex.Simple({{"name", "dens_sq"}, {"op", "reduce_channels"}, {"inputs", {"dens_white"}},
                 {"mode", "sum_squares"}});
      ex.Simple({{"name", "dens_d2"}, {"op", "add"}, {"inputs", {"bank_min", "dens_sq"}}});
    } else {
      ex.Simple({{"name", "dens_d2"}, {"op", "reduce_channels"}, {"inputs", {"dens_white"}},
                 {"mode", "sum_squares"}});
    }
    maps.push_back("dens_d2");
    weights.push_back(c.density_weight / comb[3].item<float>());
    bias -= c.density_weight * comb[2].item<float>() / comb[3].item<float>();
  }
  if (c.fine_density && net->fine_fitted) {
    int64_t w = net->fine_w.size(0);
    ex.Conv("fine_white", "e1", net->fine_w.view({w, w, 1, 1}), net->fine_b, 1, 1, 0, "none");
    ex.Simple({{"name", "fine_sq"}, {"op", "reduce_channels"}, {"inputs", {"fine_white"}},
               {"mode", "sum_squares"}});
    ex.Simple({{"name", "fine_d2"}, {"op", "maxpool2d"}, {"inputs", {"fine_sq"}},
               {"kernel", {2, 2}}, {"stride", {2, 2}}});
    maps.push_back("fine_d2");
    weights.push_back(c.density_weight / comb[5].item<float>());
    bias -= c.density_weight * comb[4].item<float>() / comb[5].item<float>();
  }
  std::string combine_in = "seg";
  if (maps.size() > 1) {
    ex.Simple({{"name", "maps"}, {"op", "concat"}, {"inputs", maps}});
    combine_in = "maps";
  }
  ex.Conv("combine", combine_in,
          torch::tensor(weights).view({1, int64_t(weights.size()), 1, 1}), torch::tensor({bias}),
          1, 1, 0, "none");
  std::string map_input = "combine";
  if (c.global_weight > 0 && net->global_fitted) {
    // Image-level term: per-channel means (global average pools) of the stem,
    // 1/4, decoder and 1/8 features -> whitening -> squared distance ->
    // standardised and weighted -> broadcast over the map (bilinear upsample
    // of a 1x1 value) -> added.
    const int64_t g = net->global_channels();
    std::vector<std::string> pools;
    for (const char* tap : {"e1", "e2", "d2b", "e3b"}) {
      std::string name = std::string("glob_mean_") + tap;
      ex.Simple({{"name", name}, {"op", "global_avgpool"}, {"inputs", {tap}}});
      pools.push_back(name);
    }
    ex.Simple({{"name", "glob_desc"}, {"op", "concat"}, {"inputs", pools}});
    ex.Conv("glob_white", "glob_desc", net->glob_w.view({g, g, 1, 1}), net->glob_b, 1, 1, 0,
            "none");
    ex.Simple({{"name", "glob_d2"}, {"op", "reduce_channels"}, {"inputs", {"glob_white"}},
               {"mode", "sum_squares"}});
    const float gm = net->glob_stats[0].item<float>(), gs = net->glob_stats[1].item<float>();
    ex.Conv("glob_term", "glob_d2", torch::tensor({c.global_weight / gs}).view({1, 1, 1, 1}),
            torch::tensor({-c.global_weight * gm / gs}), 1, 1, 0, "none");
    ex.Simple({{"name", "glob_map"}, {"op", "upsample"}, {"inputs", {"glob_term"}},
               {"mode", "bilinear"}, {"scale", {input_h / 4, input_w / 4}}});
    ex.Simple({{"name", "map"}, {"op", "add"}, {"inputs", {map_input, "glob_map"}}});
    map_input = "map";
  }
  json graph = {{"input", {{"h", input_h}, {"w", input_w}, {"c", c.in_channels}}},
                {"nodes", ex.nodes},
                {"output", map_input}};
  spec->graph_json = graph.dump();
}

int64_t CountMacs(FlawNet& net, int h, int w) {
  int64_t macs = 0;
  auto conv = [&](int64_t oh, int64_t ow, int64_t in, int64_t out, int k) {
    macs += oh * ow * in * out * k * k;
  };
  int wd = net->config.width, c = net->config.in_channels;
  int h2 = h / 2, w2 = w / 2, h4 = h / 4, w4 = w / 4, h8 = h / 8, w8 = w / 8;
  conv(h2, w2, c, wd, 3);
  conv(h2, w2, wd, wd, 3);
  conv(h4, w4, wd, 2 * wd, 3);
  conv(h4, w4, 2 * wd, 2 * wd, 3);
  conv(h8, w8, 2 * wd, 4 * wd, 3);
  conv(h8, w8, 4 * wd, 4 * wd, 3);
  conv(h8, w8, 4 * wd, 4 * wd, 3);
  conv(h4, w4, 6 * wd, 2 * wd, 1);
  conv(h4, w4, 2 * wd, 2 * wd, 3);
  conv(h4, w4, 2 * wd, 1, 1);
  int maps = 1;
  if (net->config.density && net->density_fitted) {
    int f = net->feature_channels();
    conv(h4, w4, f, f, 1);
    if (net->config.bank > 0) conv(h4, w4, f, net->config.bank, 1);
    ++maps;
  }
  if (net->config.fine_density && net->fine_fitted) {
    conv(h2, w2, wd, wd, 1);
    ++maps;
  }
  conv(h4, w4, maps, 1, 1);
  if (net->config.global_weight > 0 && net->global_fitted) {
    int64_t g = net->global_channels();
    conv(1, 1, g, g, 1);
    conv(1, 1, 1, 1, 1);
  }
  return macs;
}

}  // namespace flawlens::train
