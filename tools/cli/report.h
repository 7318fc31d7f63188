// One self-contained HTML page for `flawlens eval --report DIR`: metric
// tables, inline SVG ROC curve(s), score histograms (good vs defective) and a
// grid of heatmap overlays as inline base64 PNG. No external resources, no
// scripts, no URLs.
#pragma once

#include <string>
#include <vector>

#include "cli/metrics.h"

namespace flawlens::cli {

struct MetricRow {
  std::string name;  // "all" or a defect type
  int good = 0, defective = 0, masks = 0;
  double image_auroc = kNaN, pixel_auroc = kNaN, pixel_auroc_tie_bound = kNaN, pro = kNaN;
  Interval image_auroc_ci;  // 95 % bootstrap interval (AurocBootstrap, by GroupKey or --groups)
  double f1 = kNaN, precision = kNaN, recall = kNaN, fpr = kNaN;
  double best_f1 = kNaN, best_f1_threshold = kNaN;
  // Defects caught when 1 % / 5 % of the good images may be flagged
  // (RecallAtFalseAlarms).
  double recall_at_fa1 = kNaN, recall_at_fa5 = kNaN;
};

struct ReportTile {
  std::string title;       // file name
  std::string subtitle;    // "crack · score 1.23 · ok (missed)"
  std::string png_base64;  // overlay thumbnail
  bool miss = false;       // wrong verdict at the threshold
};

struct ReportData {
  std::string model_name, model_path, dataset, split;
  float threshold = 0;
  std::vector<MetricRow> rows;            // rows[0] = overall
  std::vector<RocPoint> image_roc, pixel_roc;
  std::vector<float> good_scores, defective_scores;
  std::vector<ReportTile> defective_tiles;  // lowest scores first
  std::vector<ReportTile> good_tiles;       // highest scores first
  std::vector<std::string> notes;           // warnings, failed images
  std::string interval_note;                // AurocIntervalNote(...)
};

std::string RenderReportHtml(const ReportData& data);
std::string HtmlEscape(const std::string& s);

}  // namespace flawlens::cli
