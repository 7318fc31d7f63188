// Input geometry that respects the photo: keep-aspect preprocessing (fit
// inside, mirror padding), a taught keep-aspect model that scores only the map
// cells over the photo (the fit as the detector), the per-cell calibration
// that ignores padding, and the model file's geometry field with its checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fit/calibration.h"
#include "fit/teacher.h"
#include "flawlens/detector.h"
#include "image/preprocess.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "test_models.h"

namespace flawlens {
namespace {

using fit::DensityKind;
using fit::FitOptions;
using fit::Teacher;
using fit::TeacherOptions;
using testing::Rng;
using testing::SpecBuilder;

constexpr int kSide = 64;
using Json = nlohmann::json;

// File surgery (as model_format_test.cc): the header as JSON, the data bytes.
struct FileParts {
  Json header;
  std::vector<uint8_t> data;
};

FileParts Split(const std::vector<uint8_t>& bytes) {
  FileParts p;
  auto h = ReadSafetensorsHeader(bytes.data(), bytes.size());
  EXPECT_TRUE(h.ok()) << h.status().ToString();
  if (!h.ok()) return p;
  p.header = Json::parse(bytes.begin() + 8, bytes.begin() + static_cast<ptrdiff_t>(h->data_offset));
  p.data.assign(bytes.begin() + static_cast<ptrdiff_t>(h->data_offset), bytes.end());
  return p;
}

std::vector<uint8_t> Assemble(const FileParts& p) {
  std::string header = p.header.dump();
  header.append((8 - header.size() % 8) % 8, ' ');
  std::vector<uint8_t> out(8 + header.size() + p.data.size());
  WriteHeaderLength(header.size(), out.data());
  std::memcpy(out.data() + 8, header.data(), header.size());
  if (!p.data.empty()) std::memcpy(out.data() + 8 + header.size(), p.data.data(), p.data.size());
  return out;
}

// 64x64 gray -> two stride-2 convs: a 16x16x16 feature map (as fit_test.cc).
std::vector<uint8_t> TinyBackbone() {
  SpecBuilder b(kSide, kSide, 1, 21);
  b.Conv("c1", "input", 8, 3, 2, 1, "relu").Conv("c2", "c1", 16, 3, 2, 1, "relu");
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = kSide;
  pre.channels = 1;
  return WriteModel(b.Build("c2", pre, "{}", "{}", R"({"kind":"backbone","name":"tiny"})"));
}

struct Gray {
  int w = 0, h = 0;
  std::vector<uint8_t> px;
  ImageView view() const { return {px.data(), w, h, PixelFormat::kGray8, 0}; }
};

// Stripes with a random phase and noise, w x h.
Gray Stripes(uint64_t seed, int w, int h) {
  Rng rng(seed);
  const float phase = 3.14159f * rng.Uniform(), amp = 30 + 5 * rng.Uniform();
  Gray g{w, h, std::vector<uint8_t>(size_t(w) * h)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      g.px[size_t(y) * w + x] =
          uint8_t(std::clamp(128 + amp * std::sin(0.35f * x + 0.2f * y + phase) + 8 * rng.Uniform(),
                             0.0f, 255.0f));
  return g;
}

TEST(KeepAspect, FitsTheWholePhotoInsideAndMirrorsTheRest) {
  PreprocessConfig pc;
  pc.resize_w = pc.resize_h = 64;
  pc.channels = 1;
  pc.keep_aspect = true;
  ASSERT_TRUE(pc.Validate().ok());
  EXPECT_TRUE(pc.padded());
  EXPECT_STREQ(pc.geometry_name(), "keep_aspect");
  // 256x64 (4:1) -> 64x16 in the middle rows; 32x128 -> 16x64 in the middle columns.
  auto wide = PreprocessContent(pc, 256, 64, {});
  ASSERT_TRUE(wide.ok());
  EXPECT_EQ(wide->x, 0);
  EXPECT_EQ(wide->y, 24);
  EXPECT_EQ(wide->w, 64);
  EXPECT_EQ(wide->h, 16);
  auto tall = PreprocessContent(pc, 32, 128, {});
  ASSERT_TRUE(tall.ok());
  EXPECT_EQ(tall->x, 24);
  EXPECT_EQ(tall->w, 16);
  EXPECT_EQ(tall->h, 64);
  // The whole photo is covered (nothing cropped): the input spans it and more.
  auto cov = PreprocessCovered(pc, 256, 64, {});
  ASSERT_TRUE(cov.ok());
  EXPECT_NEAR(cov->x, 0, 1e-3);
  EXPECT_NEAR(cov->w, 256, 1e-3);
  EXPECT_LT(cov->y, 0);
  EXPECT_GT(cov->h, 64);
  // Mirror padding: the row above the content is the content's first row.
  const Gray g = Stripes(3, 256, 64);
  std::vector<float> out(64 * 64);
  ASSERT_TRUE(Preprocess(g.view(), pc, {}, out.data(), nullptr, nullptr).ok());
  for (int x = 0; x < 64; ++x) EXPECT_EQ(out[size_t(23) * 64 + x], out[size_t(24) * 64 + x]) << x;
  // Not with a crop or a fixed pixel scale.
  PreprocessConfig bad = pc;
  bad.pixel_scale = 0.5f;
  EXPECT_EQ(bad.Validate().code(), ErrorCode::kInvalidArgument);
  bad = pc;
  bad.crop = {0, 0, 32, 32};
  EXPECT_EQ(bad.Validate().code(), ErrorCode::kInvalidArgument);
}

TEST(KeepAspect, CellCalibrationIgnoresPaddingCells) {
  // 20 maps of 4x4: content rows 1..2 hold values around 0, padding rows
  // (0 and 3) a huge 1000. With the content rectangles the padding never
  // reaches the mean; the rows no map covers take the content's values.
  const int n = 20, h = 4, w = 4;
  std::vector<float> maps(size_t(n) * h * w, 1000.0f);
  std::vector<RectI> content(size_t(n), RectI{0, 1, 4, 2});
  Rng rng(5);
  for (int k = 0; k < n; ++k)
    for (int y = 1; y <= 2; ++y)
      for (int x = 0; x < w; ++x) maps[size_t(k) * h * w + size_t(y) * w + x] = rng.Uniform();
  auto masked = fit::FitCellCalibration(maps.data(), n, h, w, false, 0.0f, content.data());
  ASSERT_TRUE(masked.ok()) << masked.status().ToString();
  for (float m : masked->mean) EXPECT_LT(std::fabs(m), 1.0f);
  for (float s : masked->std) EXPECT_LT(s, 2.0f);
  auto plain = fit::FitCellCalibration(maps.data(), n, h, w, false, 0.0f);
  ASSERT_TRUE(plain.ok());
  EXPECT_GT(plain->mean[0], 100.0f);  // without them the padding is the mean
  EXPECT_FALSE(fit::FitCellCalibration(maps.data(), n, h, w, true, 0.0f, content.data()).ok());
}

// A keep-aspect teacher on photos of several shapes (wide and tall).
std::unique_ptr<Teacher> TaughtOnMixedShapes(const std::vector<uint8_t>& backbone, bool keep) {
  TeacherOptions to;
  to.dims = 8;
  to.keep_aspect = keep;
  auto t = Teacher::Create(backbone.data(), backbone.size(), to);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  if (!t.ok()) return nullptr;
  for (int i = 0; i < 30; ++i) {
    const int w = i % 3 == 0 ? 128 : i % 3 == 1 ? 64 : 48, h = i % 3 == 0 ? 48 : i % 3 == 1 ? 64 : 96;
    auto added = (*t)->AddImage(Stripes(100 + uint64_t(i), w, h).view());
    EXPECT_TRUE(added.ok()) << added.status().ToString();
  }
  return std::move(t).value();
}

TEST(KeepAspect, ATaughtModelScoresOnlyTheCellsOverThePhoto) {
  const std::vector<uint8_t> backbone = TinyBackbone();
  for (DensityKind kind : {DensityKind::kPerPosition, DensityKind::kShared}) {
    const std::string what = fit::DensityKindName(kind);
    auto t = TaughtOnMixedShapes(backbone, true);
    ASSERT_TRUE(t);
    // A 128x48 photo lies on rows 20..43 of the 64x64 input: map rows 5..10.
    const RectI& c0 = t->content_cells(0);
    EXPECT_EQ(c0.x, 0);
    EXPECT_EQ(c0.w, 16);
    EXPECT_EQ(c0.y, 5);
    EXPECT_EQ(c0.h, 6);
    FitOptions fo;
    fo.density = kind;
    auto r = t->Fit(fo);
    ASSERT_TRUE(r.ok()) << what << ": " << r.status().ToString();
    // The file records the geometry (format version 2: a version-1 reader
    // would stretch), the card too.
    const Json meta = Split(r->model).header["__metadata__"];
    EXPECT_EQ(meta["format_version"], "2");
    EXPECT_EQ(Json::parse(std::string(meta["preprocess"]))["geometry"], "keep_aspect");
    auto det = Detector::Create(r->model.data(), r->model.size());
    ASSERT_TRUE(det.ok()) << what << ": " << det.status().ToString();
    EXPECT_EQ(nlohmann::json::parse((*det)->info().card_json)["fit"]["geometry"], "keep_aspect");
    // The engine scores image 0 as the fit did (the fit's max is over the
    // same cells as the detector's).
    auto d0 = (*det)->Detect(Stripes(100, 128, 48).view());
    ASSERT_TRUE(d0.ok());
    EXPECT_NEAR((*d0)->raw_score, r->first_raw, 1e-3f * (1 + std::fabs(r->first_raw))) << what;
    // A wide photo: the detector's map is the 16x6 cells over it, never the
    // padding, and the score is that map's maximum.
    auto d = (*det)->Detect(Stripes(999, 128, 48).view());
    ASSERT_TRUE(d.ok());
    EXPECT_EQ((*d)->map_width, 16) << what;
    EXPECT_EQ((*d)->map_height, 6) << what;
    EXPECT_FLOAT_EQ(*std::max_element((*d)->map.begin(), (*d)->map.end()), (*d)->score) << what;
    // The map lies on the photo (within half a cell of its rows).
    EXPECT_GE((*d)->map_rect.y, -3.0f) << what;
    EXPECT_LE((*d)->map_rect.y + (*d)->map_rect.h, 48 + 3.0f) << what;
    EXPECT_FALSE((*d)->anomalous) << what << " scored " << (*d)->score;
  }
}

TEST(KeepAspect, PaddingCellsNeverRaiseTheScore) {
  // The written model with its per-cell calibration edited so that every
  // cell off a wide photo (map rows 0..4 and 11..15) would score 1e4: the
  // photo's score does not change, as those cells are padding.
  const std::vector<uint8_t> backbone = TinyBackbone();
  auto t = TaughtOnMixedShapes(backbone, true);
  ASSERT_TRUE(t);
  auto r = t->Fit({});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  FileParts p = Split(r->model);
  const Json& entry = p.header["post.cell_mean"];
  ASSERT_EQ(entry["shape"], Json::array({16, 16}));
  float* mean = reinterpret_cast<float*>(p.data.data() + size_t(entry["data_offsets"][0]));
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x)
      if (y < 5 || y > 10) mean[y * 16 + x] = -1e4f;
  const std::vector<uint8_t> hot = Assemble(p);
  auto det = Detector::Create(r->model.data(), r->model.size());
  auto det_hot = Detector::Create(hot.data(), hot.size());
  ASSERT_TRUE(det.ok() && det_hot.ok());
  const Gray wide = Stripes(77, 128, 48);
  auto a = (*det)->Detect(wide.view());
  ASSERT_TRUE(a.ok());
  const float sa = (*a)->score;
  auto b = (*det_hot)->Detect(wide.view());
  ASSERT_TRUE(b.ok());
  EXPECT_FLOAT_EQ((*b)->score, sa);
  // A square photo covers those rows: there the edit shows (the edit is real).
  auto c = (*det_hot)->Detect(Stripes(78, 64, 64).view());
  ASSERT_TRUE(c.ok());
  EXPECT_GT((*c)->score, 100.0f);
}

TEST(KeepAspect, TheModelFilesGeometryIsChecked) {
  const std::vector<uint8_t> backbone = TinyBackbone();
  auto t = TaughtOnMixedShapes(backbone, true);
  ASSERT_TRUE(t);
  auto r = t->Fit({});
  ASSERT_TRUE(r.ok());
  auto edit = [&](const std::string& version, const char* key, const Json& value) {
    FileParts p = Split(r->model);
    Json& meta = p.header["__metadata__"];
    meta["format_version"] = version;
    Json pre = Json::parse(std::string(meta["preprocess"]));
    pre[key] = value;
    meta["preprocess"] = pre.dump();
    return Assemble(p);
  };
  auto status = [](const std::vector<uint8_t>& bytes) {
    auto m = LoadModel(bytes.data(), bytes.size());
    return m.ok() ? Status::Ok() : m.status();
  };
  // Unknown geometry: bad_header naming it.
  Status st = status(edit("2", "geometry", "sideways"));
  EXPECT_EQ(st.code(), ErrorCode::kBadHeader);
  EXPECT_NE(st.message().find("geometry 'sideways'"), std::string::npos) << st.message();
  // Not a string.
  EXPECT_EQ(status(edit("2", "geometry", 3)).code(), ErrorCode::kBadHeader);
  // keep_aspect in a version-1 file: an old reader would have stretched.
  st = status(edit("1", "geometry", "keep_aspect"));
  EXPECT_EQ(st.code(), ErrorCode::kBadHeader);
  EXPECT_NE(st.message().find("format_version 2"), std::string::npos) << st.message();
  // keep_aspect with a fixed pixel scale; pixel_scale named without one.
  EXPECT_EQ(status(edit("2", "pixel_scale", 0.5)).code(), ErrorCode::kBadHeader);
  EXPECT_EQ(status(edit("2", "geometry", "pixel_scale")).code(), ErrorCode::kBadHeader);
  // Version 3 is not read.
  EXPECT_EQ(status(edit("3", "geometry", "keep_aspect")).code(), ErrorCode::kBadVersion);
  // "stretch" spelled out in a version-1 file is a plain stretched model.
  EXPECT_TRUE(status(edit("1", "geometry", "stretch")).ok());
}

}  // namespace
}  // namespace flawlens
