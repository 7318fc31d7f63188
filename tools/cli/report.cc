#include "cli/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "cli/cli_util.h"

namespace flawlens::cli {

std::string HtmlEscape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

std::string Num(double v, int decimals = 3) {
  if (!std::isfinite(v)) return "&ndash;";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

// ROC curve(s) in a 320x320 plot (inline SVG, no xmlns needed in HTML5).
std::string RocSvg(const std::vector<RocPoint>& image_roc, const std::vector<RocPoint>& pixel_roc,
                   double image_auc, double pixel_auc) {
  const double s = 300, m = 40;
  std::ostringstream o;
  o << "<svg width=\"" << s + m + 10 << "\" height=\"" << s + m + 10
    << "\" role=\"img\" aria-label=\"ROC curve\">";
  o << "<g transform=\"translate(" << m << ",10)\">";
  o << "<rect width=\"" << s << "\" height=\"" << s << "\" fill=\"#fafafa\" stroke=\"#999\"/>";
  for (int i = 1; i < 5; ++i) {
    const double p = s * i / 5;
    o << "<line x1=\"" << p << "\" y1=\"0\" x2=\"" << p << "\" y2=\"" << s
      << "\" stroke=\"#e4e4e4\"/><line x1=\"0\" y1=\"" << p << "\" x2=\"" << s << "\" y2=\"" << p
      << "\" stroke=\"#e4e4e4\"/>";
  }
  o << "<line x1=\"0\" y1=\"" << s << "\" x2=\"" << s
    << "\" y2=\"0\" stroke=\"#bbb\" stroke-dasharray=\"4 4\"/>";
  auto polyline = [&](const std::vector<RocPoint>& roc, const char* colour) {
    if (roc.empty()) return;
    // At most ~2000 vertices: keep every k-th point plus the last.
    const size_t step = std::max<size_t>(1, roc.size() / 2000);
    o << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\" points=\"";
    for (size_t i = 0; i < roc.size(); i += step) {
      o << Num(roc[i].fpr * s, 1) << "," << Num((1 - roc[i].tpr) * s, 1) << " ";
    }
    o << Num(roc.back().fpr * s, 1) << "," << Num((1 - roc.back().tpr) * s, 1) << "\"/>";
  };
  polyline(pixel_roc, "#e07b00");
  polyline(image_roc, "#1f5fbf");
  for (int i = 0; i <= 5; ++i) {
    const double p = s * i / 5;
    o << "<text x=\"" << p << "\" y=\"" << s + 14 << "\" font-size=\"10\" text-anchor=\"middle\">"
      << Num(i / 5.0, 1) << "</text>";
    o << "<text x=\"-4\" y=\"" << s - p + 3 << "\" font-size=\"10\" text-anchor=\"end\">"
      << Num(i / 5.0, 1) << "</text>";
  }
  o << "<text x=\"" << s / 2 << "\" y=\"" << s + 28
    << "\" font-size=\"11\" text-anchor=\"middle\">false positive rate</text>";
  o << "<text x=\"8\" y=\"16\" font-size=\"11\" fill=\"#1f5fbf\">image AUROC " << Num(image_auc)
    << "</text>";
  if (!pixel_roc.empty()) {
    o << "<text x=\"8\" y=\"30\" font-size=\"11\" fill=\"#e07b00\">pixel AUROC " << Num(pixel_auc)
      << "</text>";
  }
  o << "</g></svg>";
  return o.str();
}

// Overlaid histograms of good and defective scores with the threshold.
std::string HistogramSvg(const std::vector<float>& good, const std::vector<float>& bad,
                         float threshold) {
  const double w = 520, h = 220, m = 30;
  std::vector<float> all = good;
  all.insert(all.end(), bad.begin(), bad.end());
  all.push_back(threshold);
  all.erase(std::remove_if(all.begin(), all.end(), [](float v) { return !std::isfinite(v); }),
            all.end());
  if (all.empty()) return "<p>No scores.</p>";
  // Robust range: 1st..99th percentile widened to include the threshold.
  std::vector<float> sorted = all;
  std::sort(sorted.begin(), sorted.end());
  double lo = sorted[sorted.size() / 100], hi = sorted[sorted.size() - 1 - sorted.size() / 100];
  lo = std::min(lo, static_cast<double>(threshold));
  hi = std::max(hi, static_cast<double>(threshold));
  if (hi <= lo) hi = lo + 1;
  const int bins = 40;
  auto count = [&](const std::vector<float>& v) {
    std::vector<int> c(bins, 0);
    for (float x : v) {
      if (!std::isfinite(x)) continue;
      int b = static_cast<int>((x - lo) / (hi - lo) * bins);
      c[std::min(bins - 1, std::max(0, b))]++;
    }
    return c;
  };
  const std::vector<int> cg = count(good), cb = count(bad);
  // Heights as fractions of each class, so unequal class sizes compare.
  double top = 1e-9;
  for (int b = 0; b < bins; ++b) {
    if (!good.empty()) top = std::max(top, cg[b] / static_cast<double>(good.size()));
    if (!bad.empty()) top = std::max(top, cb[b] / static_cast<double>(bad.size()));
  }
  std::ostringstream o;
  o << "<svg width=\"" << w + 2 * m << "\" height=\"" << h + 2 * m
    << "\" role=\"img\" aria-label=\"score histograms\"><g transform=\"translate(" << m << ","
    << m / 2 << ")\">";
  o << "<rect width=\"" << w << "\" height=\"" << h << "\" fill=\"#fafafa\" stroke=\"#999\"/>";
  const double bw = w / bins;
  auto bars = [&](const std::vector<int>& c, size_t n, const char* colour) {
    if (n == 0) return;
    for (int b = 0; b < bins; ++b) {
      const double bh = c[b] / static_cast<double>(n) / top * (h - 10);
      if (bh <= 0) continue;
      o << "<rect x=\"" << Num(b * bw, 1) << "\" y=\"" << Num(h - bh, 1) << "\" width=\""
        << Num(bw - 1, 1) << "\" height=\"" << Num(bh, 1) << "\" fill=\"" << colour
        << "\" fill-opacity=\"0.55\"/>";
    }
  };
  bars(cg, good.size(), "#2e9e44");
  bars(cb, bad.size(), "#d03030");
  const double tx = (threshold - lo) / (hi - lo) * w;
  o << "<line x1=\"" << Num(tx, 1) << "\" y1=\"0\" x2=\"" << Num(tx, 1) << "\" y2=\"" << h
    << "\" stroke=\"#000\" stroke-dasharray=\"5 3\"/>";
  o << "<text x=\"" << Num(tx + 3, 1) << "\" y=\"12\" font-size=\"11\">threshold "
    << Num(threshold) << "</text>";
  o << "<text x=\"0\" y=\"" << h + 14 << "\" font-size=\"10\">" << Num(lo) << "</text>";
  o << "<text x=\"" << w << "\" y=\"" << h + 14 << "\" font-size=\"10\" text-anchor=\"end\">"
    << Num(hi) << "</text>";
  o << "<text x=\"" << w / 2 << "\" y=\"" << h + 14
    << "\" font-size=\"11\" text-anchor=\"middle\">score (values outside the range in the end "
       "bins)</text>";
  o << "</g></svg>";
  o << "<p class=\"legend\"><span style=\"color:#2e9e44\">&#9632;</span> good (" << good.size()
    << ") &nbsp; <span style=\"color:#d03030\">&#9632;</span> defective (" << bad.size()
    << "), bar height = fraction of the class</p>";
  return o.str();
}

std::string Tiles(const std::vector<ReportTile>& tiles) {
  std::ostringstream o;
  o << "<div class=\"grid\">";
  for (const ReportTile& t : tiles) {
    o << "<figure class=\"" << (t.miss ? "miss" : "hit") << "\"><img alt=\""
      << HtmlEscape(t.title) << "\" src=\"data:image/png;base64," << t.png_base64
      << "\"><figcaption><b>" << HtmlEscape(t.title) << "</b><br>" << HtmlEscape(t.subtitle)
      << "</figcaption></figure>";
  }
  o << "</div>";
  return o.str();
}

}  // namespace

std::string RenderReportHtml(const ReportData& d) {
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    << "<title>flawlens eval: " << HtmlEscape(d.model_name) << " on " << HtmlEscape(d.dataset)
    << "</title><style>"
    << "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}"
    << "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    << "text-align:right}th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}"
    << ".grid{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0;width:220px;font-size:12px}"
    << "figure img{width:220px;height:auto;image-rendering:auto;border:3px solid #2e9e44}"
    << "figure.miss img{border-color:#d03030}.legend{font-size:12px}.plots{display:flex;"
    << "flex-wrap:wrap;gap:24px;align-items:flex-start}.note{color:#a05000}"
    << "</style></head><body>\n";
  o << "<h1>flawlens eval</h1><p>Model <b>" << HtmlEscape(d.model_name) << "</b> ("
    << HtmlEscape(d.model_path) << ") on <b>" << HtmlEscape(d.dataset) << "</b>, split <b>"
    << HtmlEscape(d.split) << "</b>; threshold " << Num(d.threshold, 4)
    << " (score &ge; threshold = defective).</p>\n";
  for (const std::string& n : d.notes) o << "<p class=\"note\">" << HtmlEscape(n) << "</p>\n";

  o << "<h2>Metrics</h2><table><tr><th>type</th><th>good</th><th>defective</th><th>masks</th>"
    << "<th>image AUROC (95% CI)</th><th>pixel AUROC</th><th>PRO (FPR&le;0.3)</th><th>F1 @ threshold</th>"
    << "<th>precision</th><th>recall</th><th>FPR</th><th>best F1 (threshold)</th></tr>\n";
  for (const MetricRow& r : d.rows) {
    o << "<tr><td>" << HtmlEscape(r.name) << "</td><td>" << r.good << "</td><td>" << r.defective
      << "</td><td>" << r.masks << "</td><td>" << Num(r.image_auroc)
      << (std::isfinite(r.image_auroc_ci.lo)
              ? " <small>(" + Num(r.image_auroc_ci.lo) + "&ndash;" + Num(r.image_auroc_ci.hi) + ")</small>"
              : std::string())
      << "</td><td>"
      << Num(r.pixel_auroc) << "</td><td>" << Num(r.pro) << "</td><td>" << Num(r.f1)
      << "</td><td>" << Num(r.precision) << "</td><td>" << Num(r.recall) << "</td><td>"
      << Num(r.fpr) << "</td><td>" << Num(r.best_f1) << " (" << Num(r.best_f1_threshold) << ")"
      << "</td></tr>\n";
  }
  o << "</table><p class=\"legend\">Per type: that type's images against all good images. "
    << "Pixel metrics over images with masks plus all good images; PRO as in MVTec AD. "
    << HtmlEscape(d.interval_note) << ".</p>\n";

  const double image_auc = d.rows.empty() ? kNaN : d.rows[0].image_auroc;
  const double pixel_auc = d.rows.empty() ? kNaN : d.rows[0].pixel_auroc;
  o << "<h2>ROC and scores</h2><div class=\"plots\">"
    << RocSvg(d.image_roc, d.pixel_roc, image_auc, pixel_auc)
    << "<div>" << HistogramSvg(d.good_scores, d.defective_scores, d.threshold) << "</div></div>\n";

  o << "<h2>Defective images with the lowest scores</h2><p class=\"legend\">Red frame: missed "
       "at the threshold.</p>"
    << Tiles(d.defective_tiles) << "\n";
  o << "<h2>Good images with the highest scores</h2><p class=\"legend\">Red frame: false "
       "alarm at the threshold.</p>"
    << Tiles(d.good_tiles) << "\n";
  o << "</body></html>\n";
  return o.str();
}

}  // namespace flawlens::cli
