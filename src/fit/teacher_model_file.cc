// Teacher::WriteModelFile: the fitted model as a flawlens model file.
#include "fit/teacher.h"
#include "model/graph_builder.h"
#include "model/json_util.h"

namespace flawlens::fit {
namespace {

JsonValue IntPair(int a, int b) { return JsonValue::Array().Push(a).Push(b); }

}  // namespace

// The model file: the kept backbone, the projection, the local average, the
// density head, postprocessing, calibration and the card.
std::vector<uint8_t> Teacher::WriteModelFile(const FitOptions& o, const JsonValue& extra,
                                             const Density& dens, const CellCalibration& cc,
                                             const EdgeCalibration& ec,
                                             const FitResult& result) const {
  const int d = d_;
  const Shape& in = model_->graph.input;
  GraphBuilder g(in.h, in.w, in.c);
  for (size_t i = 0; i < kept_nodes_.size(); ++i) g.RawNode(kept_nodes_[i]);
  for (const ModelTensor& t : kept_tensors_) g.AddTensor(t.name, {t.shape, t.data});
  ConvParams proj;
  proj.out_channels = d;
  std::string features = g.Conv2d(kProjNode, feature_node_, proj, {{d, 1, 1, fc_}, projection_});
  if (options_.pool > 1) {
    PoolParams pool;
    pool.kernel_h = pool.kernel_w = options_.pool;
    pool.pad_top = pool.pad_left = pool.pad_bottom = pool.pad_right = options_.pool / 2;
    pool.count_include_pad = false;
    features = g.AvgPool2d(kPoolNode, features, pool);
  }
  g.PositionMahalanobis(kDensityNode, features, {{dens.grid_h, dens.grid_w, d, d}, dens.whitening},
                        {{fh_, fw_, d}, dens.mean});
  ModelSpec spec = g.Spec(kDensityNode, preprocess_json_);
  PostprocessConfig post;
  post.blur_sigma = o.blur_sigma;
  post.reduce = ScoreReduce::kMax;
  spec.postprocess_json = PostprocessToJson(post, "post.cell_mean", "post.cell_std");
  spec.tensors.push_back({"post.cell_mean", {fh_, fw_}, cc.mean});
  spec.tensors.push_back({"post.cell_std", {fh_, fw_}, cc.std});
  if (ec.s > 0) {
    JsonValue pj;
    if (ParseJson(spec.postprocess_json.data(), spec.postprocess_json.size(), "postprocess", &pj)
            .ok()) {
      pj.Set("edge_mean", "post.edge_mean").Set("edge_std", "post.edge_std");
      spec.postprocess_json = pj.Dump();
    }
    spec.tensors.push_back({"post.edge_mean", {ec.s, ec.s}, ec.mean});
    spec.tensors.push_back({"post.edge_std", {ec.s, ec.s}, ec.std});
  }
  spec.calibration_json = CalibrationToJson(result.calibration);

  JsonValue card = JsonValue::Object();
  card.Set("name", o.name).Set("kind", "detector").Set("taught_by", o.taught_by);
  if (!o.created.empty()) card.Set("created", o.created);
  card.Set("backbone", source_card_backbone_);
  JsonValue fit = JsonValue::Object();
  fit.Set("feature_node", feature_node_)
      .Set("density", DensityKindName(o.density))
      .Set("dims", d)
      .Set("pool", options_.pool)
      .Set("geometry", model_->preprocess.geometry_name())
      .Set("region", IntPair(dens.grid_h, dens.grid_w))
      .Set("projection", "rademacher")
      .Set("seed", uint64_t(options_.seed))
      .Set("channels", IntPair(options_.channel_begin, options_.channel_end ? options_.channel_end : fc_))
      .Set("shrinkage", o.shrinkage < 0 ? JsonValue("oas") : JsonValue(double(o.shrinkage)))
      .Set("mean_shrinkage", result.mean_shrinkage)
      .Set("eps", double(o.eps))
      .Set("blur_sigma", double(o.blur_sigma))
      .Set("cell_std_shrink", double(o.cell_std_shrink))
      .Set("false_alarm_rate", o.false_alarm_rate)
      .Set("folds", result.folds)
      .Set("groups", result.groups)
      .Set("link", double(o.link))
      .Set("images", images())
      .Set("map", IntPair(fh_, fw_));
  JsonValue warnings = JsonValue::Array();
  for (const std::string& w : result.warnings) warnings.Push(w);
  fit.Set("warnings", std::move(warnings));
  card.Set("fit", std::move(fit));
  if (extra.is_object()) {
    for (size_t i = 0; i < extra.size(); ++i) card.Set(extra.keys()[i], extra.items()[i]);
  }
  spec.card_json = card.Dump();
  return WriteModel(spec);
}

}  // namespace flawlens::fit
