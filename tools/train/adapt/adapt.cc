#include "train/adapt/adapt.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

#include "train/adapt/graph_module.h"
#include "cli/dataset.h"
#include "train/backbone_fit.h"
#include "image/preprocess.h"
#include "model/model.h"
#include "train/synth_anomaly.h"

namespace flawlens::adapt {
namespace {

namespace F = torch::nn::functional;
using Clock = std::chrono::steady_clock;
using train::FloatImage;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// The good training images (train split, or a flat folder), resized to the
// backbone's input, pixel values 0..255.
Status LoadImages(const std::string& data, int w, int h, int channels,
                  std::vector<FloatImage>* out) {
  auto splits = cli::ListSplits(data);
  const bool has_train = std::find(splits.begin(), splits.end(), "train") != splits.end();
  auto ds = cli::LoadDataset(data, has_train ? "train" : "");
  if (!ds.ok()) return ds.status();
  if (!has_train && ds->split != "flat" && !splits.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "%s: no train/ split and not a flat folder of images", data.c_str());
  }
  const PreprocessConfig raw = train::RawResizeConfig(w, h, channels);
  PreprocessScratch scratch;
  int skipped = 0;
  for (const std::string& path : ds->good_paths()) {
    auto bytes = cli::ReadFileBytes(path);
    if (!bytes.ok()) { ++skipped; continue; }
    auto img = DecodeImage(bytes->data(), bytes->size());
    if (!img.ok()) { ++skipped; continue; }
    FloatImage f;
    f.h = h;
    f.w = w;
    f.c = channels;
    f.data.resize(size_t(h) * w * channels);
    FLAWLENS_RETURN_IF_ERROR(Preprocess(img->view(), raw, RectF{}, f.data.data(), &scratch, nullptr));
    out->push_back(std::move(f));
  }
  if (skipped > 0) std::fprintf(stderr, "adapt: skipped %d unreadable image(s)\n", skipped);
  if (out->size() < 2) {
    return MakeError(ErrorCode::kInvalidArgument, "%s: need at least 2 readable good images, found %zu",
                     data.c_str(), out->size());
  }
  return Status::Ok();
}

// Raw pixels (N x H x W x C, 0..255) -> the backbone's input (NCHW).
torch::Tensor Normalise(const torch::Tensor& nhwc, const PreprocessConfig& pre) {
  const int c = pre.channels;
  torch::Tensor mean = torch::from_blob(const_cast<float*>(pre.mean), {c}).clone();
  torch::Tensor std = torch::from_blob(const_cast<float*>(pre.std), {c}).clone();
  return ((nhwc * pre.scale - mean) / std).permute({0, 3, 1, 2}).contiguous();
}

FloatImage Augment(const FloatImage& src, int crop, bool flips, std::mt19937* rng) {
  const int ch = crop > 0 ? std::min(crop, src.h) : src.h;
  const int cw = crop > 0 ? std::min(crop, src.w) : src.w;
  const int y0 = std::uniform_int_distribution<int>(0, src.h - ch)(*rng);
  const int x0 = std::uniform_int_distribution<int>(0, src.w - cw)(*rng);
  const bool fx = flips && ((*rng)() & 1), fy = flips && ((*rng)() & 1);
  FloatImage out;
  out.h = ch;
  out.w = cw;
  out.c = src.c;
  out.data.resize(size_t(ch) * cw * src.c);
  for (int y = 0; y < ch; ++y) {
    const int sy = fy ? y0 + ch - 1 - y : y0 + y;
    for (int x = 0; x < cw; ++x) {
      const int sx = fx ? x0 + cw - 1 - x : x0 + x;
      for (int c = 0; c < src.c; ++c) out.at(y, x, c) = src.at(sy, sx, c);
    }
  }
  return out;
}

// The first node to train: `name`, or the conv2d that starts the last
// `fraction` of the conv2d nodes on the way to the output.
Result<int> FirstTrainedNode(const GraphModuleImpl& m, const std::string& name, float fraction) {
  const Graph& g = m.graph();
  if (!name.empty()) {
    const int i = m.FindNode(name);
    if (i < 0) return MakeError(ErrorCode::kInvalidArgument, "--train-from: no node '%s' in the backbone", name.c_str());
    return i;
  }
  std::vector<int> convs;
  for (int i = 0; i < g.output; ++i)
    if (g.nodes[size_t(i)].op == OpType::kConv2d) convs.push_back(i);
  if (convs.empty()) return MakeError(ErrorCode::kInvalidArgument, "the backbone has no conv2d to train");
  const int k = std::clamp(int(std::lround(double(convs.size()) * (1.0 - fraction))), 0,
                           int(convs.size()) - 1);
  return convs[size_t(k)];
}

struct Batch {
  torch::Tensor x;     // N x C x H x W, the backbone's input
  torch::Tensor mask;  // N x 1 x H x W, 1 = synthetic anomaly
};

Batch MakeBatch(const std::vector<FloatImage>& images, const AdaptOptions& opt,
                const PreprocessConfig& pre, std::mt19937* rng) {
  train::SynthConfig synth;
  synth.band = opt.synth_band;
  std::vector<torch::Tensor> xs, ms;
  for (int i = 0; i < opt.batch; ++i) {
    const FloatImage& src =
        images[size_t(std::uniform_int_distribution<int>(0, int(images.size()) - 1)(*rng))];
    FloatImage img = Augment(src, opt.crop, opt.flips, rng);
    std::vector<float> mask(size_t(img.h) * img.w, 0.0f);
    if (std::uniform_real_distribution<float>(0, 1)(*rng) < opt.anomaly_prob)
      train::PaintAnomalies(&img, &mask, images, synth, rng);
    xs.push_back(torch::from_blob(img.data.data(), {img.h, img.w, img.c}).clone());
    ms.push_back(torch::from_blob(mask.data(), {1, img.h, img.w}).clone());
  }
  return {Normalise(torch::stack(xs), pre), torch::stack(ms)};
}

}  // namespace

Status RunAdaptation(const AdaptOptions& opt, AdaptReport* report) {
  const auto start = Clock::now();
  if (opt.out.empty()) return MakeError(ErrorCode::kInvalidArgument, "adapt: no --out file given");
  if (opt.batch < 1) return MakeError(ErrorCode::kInvalidArgument, "adapt: --batch must be >= 1");
  if (opt.steps <= 0 && !(opt.minutes > 0))
    return MakeError(ErrorCode::kInvalidArgument, "adapt: give --minutes > 0 or --steps > 0");
  torch::set_num_threads(std::max(1, opt.threads));
  torch::manual_seed(uint64_t(opt.seed));

  auto path = train::ResolveBackbone(opt.backbone);
  if (!path.ok()) return path.status();
  auto bytes = cli::ReadFileBytes(*path);
  if (!bytes.ok()) return bytes.status();
  auto model = LoadModel(bytes->data(), bytes->size());
  if (!model.ok()) {
    return MakeError(model.status().code(), "%s: %s", path->c_str(),
                     model.status().message().c_str());
  }
  const PreprocessConfig& pre = (*model)->preprocess;
  if (pre.norm != NormMode::kMeanStd || pre.padded() || pre.crop.w > 0) {
    return MakeError(ErrorCode::kUnsupported,
                     "%s: adaptation handles backbones whose preprocessing is a resize and a "
                     "mean/std normalisation (no local contrast, padding geometry or crop)",
                     path->c_str());
  }
  auto parts = ReadModelFileParts(*bytes);
  if (!parts.ok()) return parts.status();
  auto created = GraphModuleImpl::Create(**model);
  if (!created.ok()) return created.status();
  GraphModule net(*created);
  auto frozen_created = GraphModuleImpl::Create(**model);
  if (!frozen_created.ok()) return frozen_created.status();
  GraphModule frozen(*frozen_created);
  frozen->SetTrainableFrom(INT32_MAX);
  frozen->eval();

  auto first = FirstTrainedNode(*net, opt.train_from, opt.train_fraction);
  if (!first.ok()) return first.status();
  const int64_t trainable = net->SetTrainableFrom(*first);

  const Graph& g = net->graph();
  const Shape in_shape = g.input;
  const Shape feat = g.output_shape();
  if (in_shape.h % feat.h != 0 || in_shape.w % feat.w != 0) {
    return MakeError(ErrorCode::kUnsupported,
                     "%s: the output map (%dx%d) does not divide the input (%dx%d)", path->c_str(),
                     feat.w, feat.h, in_shape.w, in_shape.h);
  }
  const int stride = in_shape.h / feat.h;
  if (opt.crop > 0 && opt.crop % stride != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "adapt: --crop %d is not a multiple of the feature stride %d",
                     opt.crop, stride);
  }

  std::vector<FloatImage> images;
  FLAWLENS_RETURN_IF_ERROR(LoadImages(opt.data, in_shape.w, in_shape.h, in_shape.c, &images));
  if (!opt.quiet) {
    std::fprintf(stderr, "adapt: %zu images, %s from node %d '%s' (%lld parameters train)\n",
                 images.size(), path->c_str(), *first, g.nodes[size_t(*first)].name.c_str(),
                 static_cast<long long>(trainable));
  }

  // Frozen feature statistics on clean whole images: per-channel scale (so
  // every loss is in units of the channel's spread) and the per-position mean
  // (the centre the compactness term pulls good cells to).
  torch::Tensor chan_mean, chan_std, pos_mean;
  {
    torch::NoGradGuard no_grad;
    const size_t n = std::min<size_t>(images.size(), 48);
    torch::Tensor sum, sq;
    for (size_t i = 0; i < n; i += 8) {
      std::vector<torch::Tensor> xs;
      for (size_t j = i; j < std::min(n, i + 8); ++j)
        xs.push_back(torch::from_blob(images[j].data.data(), {in_shape.h, in_shape.w, in_shape.c}).clone());
      torch::Tensor f = frozen->forward(Normalise(torch::stack(xs), pre));
      torch::Tensor s = f.sum(0), q = (f * f).sum(0);
      sum = sum.defined() ? sum + s : s;
      sq = sq.defined() ? sq + q : q;
    }
    pos_mean = sum / double(n);
    chan_mean = pos_mean.mean({1, 2}, true);
    chan_std = (sq.mean({1, 2}, true) / double(n) - chan_mean * chan_mean).clamp_min(1e-8).sqrt() + 1e-3;
  }

  const int c = feat.c;
  torch::nn::Sequential head;
  if (opt.head_hidden > 0) {
    head = torch::nn::Sequential(
        torch::nn::Conv2d(torch::nn::Conv2dOptions(c, opt.head_hidden, 1)), torch::nn::ReLU(),
        torch::nn::Conv2d(torch::nn::Conv2dOptions(opt.head_hidden, 1, 1)));
  } else {
    head = torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(c, 1, 1)));
  }
  std::vector<torch::Tensor> backbone_params;
  for (const auto& p : net->parameters())
    if (p.requires_grad()) backbone_params.push_back(p);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(backbone_params, std::make_unique<torch::optim::AdamOptions>(opt.lr));
  groups.emplace_back(head->parameters(), std::make_unique<torch::optim::AdamOptions>(opt.lr * 10));
  torch::optim::Adam adam(groups, torch::optim::AdamOptions(opt.lr));

  std::mt19937 rng(uint32_t(opt.seed) * 2654435761u + 7);
  const double budget = opt.minutes * 60.0;
  const auto loop_start = Clock::now();
  int step = 0;
  float last_loss = 0;
  double ema[4] = {0, 0, 0, 0};
  while (true) {
    const double t = Seconds(loop_start);
    const double progress = opt.steps > 0 ? double(step) / opt.steps : t / budget;
    if (progress >= 1.0) break;
    const double lr_scale = 0.5 * (1 + std::cos(M_PI * std::min(1.0, progress)));
    for (size_t gi = 0; gi < adam.param_groups().size(); ++gi) {
      static_cast<torch::optim::AdamOptions&>(adam.param_groups()[gi].options())
          .lr(opt.lr * (gi == 0 ? 1 : 10) * lr_scale);
    }
    Batch b = MakeBatch(images, opt, pre, &rng);
    // The layers before the first trained one are the same in both
    // modules: run them once, without autograd.
    std::vector<torch::Tensor> prefix;
    torch::Tensor f0;
    {
      torch::NoGradGuard no_grad;
      prefix = frozen->values(b.x, *first);
      f0 = frozen->values_from(prefix, *first).back();
    }
    torch::Tensor f = net->values_from(prefix, *first).back();
    torch::Tensor target = F::avg_pool2d(b.mask, F::AvgPool2dFuncOptions(stride));
    torch::Tensor clean = (target < 0.01).to(torch::kFloat32);
    torch::Tensor anomalous = (target >= 0.5).to(torch::kFloat32);
    torch::Tensor z = (f - chan_mean) / chan_std;
    torch::Tensor loss = torch::zeros({});
    float parts_now[4] = {0, 0, 0, 0};
    if (opt.seg_weight > 0) {
      torch::Tensor logit = head->forward(z);
      torch::Tensor seg = F::binary_cross_entropy_with_logits(
          logit, target, F::BinaryCrossEntropyWithLogitsFuncOptions().pos_weight(torch::full({1}, 4.0f)));
      loss = loss + opt.seg_weight * seg;
      parts_now[0] = seg.item<float>();
    }
    if (opt.distill_weight > 0) {
      torch::Tensor d = ((f - f0) / chan_std).pow(2).mean(1, true);
      torch::Tensor dist = (d * clean).sum() / clean.sum().clamp_min(1.0);
      loss = loss + opt.distill_weight * dist;
      parts_now[1] = dist.item<float>();
    }
    if (opt.compact_weight > 0 && opt.crop == 0) {
      torch::Tensor d = ((f - pos_mean) / chan_std).pow(2).mean(1, true);
      torch::Tensor pull = (d * clean).sum() / clean.sum().clamp_min(1.0);
      torch::Tensor push = (torch::relu(opt.margin - d) * anomalous).sum() / anomalous.sum().clamp_min(1.0);
      loss = loss + opt.compact_weight * (pull + push);
      parts_now[2] = pull.item<float>();
      parts_now[3] = push.item<float>();
    }
    adam.zero_grad();
    loss.backward();
    adam.step();
    last_loss = loss.item<float>();
    for (int k = 0; k < 4; ++k) ema[k] = step == 0 ? parts_now[k] : 0.95 * ema[k] + 0.05 * parts_now[k];
    ++step;
    if (!opt.quiet && (step % 25 == 0 || step == 1)) {
      std::fprintf(stderr, "adapt: step %d  %.0f s  seg %.4f  distill %.4f  pull %.4f  push %.4f\n",
                   step, Seconds(loop_start), ema[0], ema[1], ema[2], ema[3]);
    }
  }

  FLAWLENS_RETURN_IF_ERROR(net->ExportWeights(&*parts));
  nlohmann::json card = nlohmann::json::parse(parts->spec.card_json, nullptr, false);
  if (!card.is_object()) card = nlohmann::json::object();
  const std::string base_name = card.value("name", std::string("backbone"));
  card["name"] = base_name + " (adapted)";
  card["kind"] = "backbone";
  card["adapted"] = {{"from", base_name},
                     {"data", opt.data},
                     {"steps", step},
                     {"seed", opt.seed},
                     {"first_trained_node", g.nodes[size_t(*first)].name},
                     {"batch", opt.batch},
                     {"lr", opt.lr},
                     {"crop", opt.crop},
                     {"seg_weight", opt.seg_weight},
                     {"head_hidden", opt.head_hidden},
                     {"distill_weight", opt.distill_weight},
                     {"compact_weight", opt.compact_weight},
                     {"margin", opt.margin},
                     {"anomaly_prob", opt.anomaly_prob},
                     {"synth_band", opt.synth_band},
                     {"taught_by", "flawlens adapt"}};
  parts->spec.card_json = card.dump();
  const std::vector<uint8_t> out = WriteModel(parts->spec);
  // The written file must load as a model (same checks the page makes).
  auto check = LoadModel(out.data(), out.size());
  if (!check.ok()) {
    return MakeError(ErrorCode::kInternal, "the adapted backbone does not load: %s",
                     check.status().message().c_str());
  }
  std::ofstream file(opt.out, std::ios::binary);
  file.write(reinterpret_cast<const char*>(out.data()), std::streamsize(out.size()));
  file.close();
  if (!file) return MakeError(ErrorCode::kInvalidArgument, "cannot write %s", opt.out.c_str());
  if (!opt.quiet) {
    std::fprintf(stderr, "adapt: %d steps in %.0f s, wrote %s\n", step, Seconds(start),
                 opt.out.c_str());
  }
  if (report != nullptr) {
    report->steps = step;
    report->seconds = Seconds(start);
    report->images = int(images.size());
    report->trainable = trainable;
    report->first_trained_node = g.nodes[size_t(*first)].name;
    report->last_loss = last_loss;
  }
  return Status::Ok();
}

}  // namespace flawlens::adapt
