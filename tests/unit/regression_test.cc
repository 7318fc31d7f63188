// Regression tests for bugs found by fuzzing and hostile-input review (H8,
// issue 5). Each test names the input class; the crashing / misbehaving
// inputs found by libFuzzer are also kept under tests/fuzz/regressions/ and
// replayed by FuzzRegressions.ReplayCommittedInputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/web_detector.h"
#include "core/limits.h"
#include "flawlens/detector.h"
#include "image/preprocess.h"
#include "model/model.h"
#include "nn/executor.h"
#include "kernels/backends.h"
#include "test_models.h"

namespace flawlens {
namespace {

using Bytes = std::vector<uint8_t>;
using testing::SpecBuilder;

Bytes ReadFile(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// 4x4 gray input, one 1x1 conv with two output channels (weights +w and -w,
// no bias), then reduce_channels. Preprocess scale 1 so pixels stay 0..255:
// a bright pixel gives +Inf and -Inf in the two channels (255 * 3e38
// overflows), a black pixel gives 0 in both.
ModelSpec OverflowSpec(const std::string& reduce_mode, const std::string& post,
                       const std::string& calibration = "{}") {
  SpecBuilder b(4, 4, 1);
  b.Conv("c", "input", 2, 1, 1, 0, "none", 1, 1, /*bias=*/false)
      .ReduceChannels("r", "c", reduce_mode);
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = 4;
  pre.channels = 1;
  pre.scale = 1.0f;
  ModelSpec spec = b.Build("r", pre, post, calibration);
  for (ModelTensor& t : spec.tensors) {
    if (t.name == "c.weight") t.data = {3e38f, -3e38f};
  }
  return spec;
}

std::unique_ptr<Detector> MakeDetector(const ModelSpec& spec, const std::string& backend) {
  const Bytes bytes = WriteModel(spec);
  auto det = Detector::Create(bytes.data(), bytes.size(), {backend, 1});
  EXPECT_TRUE(det.ok()) << det.status().ToString();
  if (!det.ok()) return nullptr;
  return std::move(det).value();
}

// Bug: Detect() only checked the reduced score. With reduce "max" a map whose
// first cell is finite and whose other cells are NaN (Inf - Inf in the
// network) reduced to a finite score: the call succeeded with a NaN heatmap
// (and with topk_mean, std::nth_element ran on NaNs, which is undefined).
TEST(DetectorNonFinite, NanCellsBehindFiniteMaxAreReported) {
  for (const char* backend : {"ref", "simd"}) {
    for (const char* post : {R"({"reduce":"max"})", R"({"reduce":"topk_mean","topk_fraction":0.5})",
                             R"({"reduce":"mean"})"}) {
      SCOPED_TRACE(std::string(backend) + " " + post);
      auto det = MakeDetector(OverflowSpec("mean", post), backend);
      ASSERT_NE(det, nullptr);
      std::vector<uint8_t> px(16, 255);
      px[0] = 0;  // cell 0: 0 - 0 = 0 (finite); every other cell: (+Inf + -Inf) / 2 = NaN
      auto r = det->Detect({px.data(), 4, 4, PixelFormat::kGray8, 0});
      ASSERT_FALSE(r.ok()) << "score " << (*r)->score << ", map[1] " << (*r)->map[1];
      EXPECT_EQ(r.status().code(), ErrorCode::kNonFinite) << r.status().ToString();
      // A clean image still works afterwards.
      std::vector<uint8_t> black(16, 0);
      auto ok = det->Detect({black.data(), 4, 4, PixelFormat::kGray8, 0});
      ASSERT_TRUE(ok.ok()) << ok.status().ToString();
      EXPECT_EQ((*ok)->map.size(), 16u);
      for (float v : (*ok)->map) EXPECT_TRUE(std::isfinite(v));
    }
  }
}

// The whole map overflowing (+Inf everywhere) was already reported; keep it so.
TEST(DetectorNonFinite, NetworkOverflowToInfIsReported) {
  auto det = MakeDetector(OverflowSpec("max", R"({"reduce":"max"})"), "simd");
  ASSERT_NE(det, nullptr);
  std::vector<uint8_t> px(16, 255);
  auto r = det->Detect({px.data(), 4, 4, PixelFormat::kGray8, 0});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNonFinite) << r.status().ToString();
}

// Bug: a calibration scale that is positive but so small that 1/scale is
// +Inf (e.g. a denormal 1e-45) loaded fine; every score became NaN or Inf
// and NaN >= threshold is false, so every image was silently "good".
TEST(DetectorNonFinite, CalibrationScaleWhoseInverseOverflowsIsRejected) {
  SpecBuilder b(4, 4, 1);
  b.Conv("c", "input", 2, 3, 1, 1, "relu").ReduceChannels("r", "c", "max");
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = 4;
  pre.channels = 1;
  for (const char* cal : {R"({"scale":1e-45})", R"({"scale":1e-39})"}) {
    SCOPED_TRACE(cal);
    const Bytes bytes = WriteModel(b.Build("r", pre, R"({"reduce":"max"})", cal));
    auto m = LoadModel(bytes.data(), bytes.size());
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), ErrorCode::kBadHeader) << m.status().ToString();
  }
  // The smallest scale whose inverse is finite still loads.
  const Bytes ok = WriteModel(b.Build("r", pre, R"({"reduce":"max"})", R"({"scale":1e-30})"));
  auto m = LoadModel(ok.data(), ok.size());
  EXPECT_TRUE(m.ok()) << m.status().ToString();
}

// A finite raw score that the calibration maps out of float range (offset
// -3e38, raw ~ +1e38) must not come back as an Inf score.
TEST(DetectorNonFinite, NormalisedScoreOverflowIsReported) {
  SpecBuilder b(4, 4, 1);
  b.Conv("c", "input", 1, 1, 1, 0, "none", 1, 1, /*bias=*/false);
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = 4;
  pre.channels = 1;
  pre.scale = 1.0f;
  ModelSpec spec = b.Build("c", pre, R"({"reduce":"max"})", R"({"offset":-3e38,"scale":1})");
  for (ModelTensor& t : spec.tensors) {
    if (t.name == "c.weight") t.data = {1e36f};
  }
  auto det = MakeDetector(spec, "ref");
  ASSERT_NE(det, nullptr);
  std::vector<uint8_t> px(16, 255);  // 255 * 1e36 = 2.55e38; minus -3e38 overflows float
  auto r = det->Detect({px.data(), 4, 4, PixelFormat::kGray8, 0});
  ASSERT_FALSE(r.ok()) << "score " << (*r)->score;
  EXPECT_EQ(r.status().code(), ErrorCode::kNonFinite) << r.status().ToString();
}

// ---- the web API (what the page calls through Embind) ---------------------------

// Writes `bytes` into the WebDetector's buffer the way engine.mjs does.
std::string LoadInto(WebDetector* d, const Bytes& bytes) {
  uint8_t* p = d->buffer(static_cast<double>(bytes.size()));
  if (p == nullptr) return "buffer refused";
  if (!bytes.empty()) std::memcpy(p, bytes.data(), bytes.size());
  return d->load("simd", 1);
}

// A valid model that is not a detector (3-channel output) is refused with
// bad_graph, a garbage / truncated / wrong-version model with its own code,
// and the page keeps the model it had; corrupt images are bad_image.
TEST(BadInputs, WebApiWrongOrGarbageModelKeepsPreviousModel) {
  WebDetector d;
  const Bytes good = WriteModel(testing::MicroSpec());
  ASSERT_EQ(LoadInto(&d, good), "");
  std::vector<uint8_t> px(4 * 4 * 4, 200);
  auto detect = [&]() {
    std::memcpy(d.buffer(static_cast<double>(px.size())), px.data(), px.size());
    return d.detect(4, 4, "rgba", 0, 0, 0, 0);
  };
  ASSERT_EQ(detect(), "");
  const double score = d.stats()[WebDetector::kScore];

  SpecBuilder b(8, 8, 3);
  b.Conv("c", "input", 3, 3, 1, 1, "relu");  // an image-to-image net, not an anomaly map
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = 8;
  const Bytes not_detector = WriteModel(b.Build("c", pre));
  Bytes wrong_version = good;
  {
    const std::string from = "\"format_version\":\"1\"";
    auto it = std::search(wrong_version.begin(), wrong_version.end(), from.begin(), from.end());
    ASSERT_NE(it, wrong_version.end());
    *(it + static_cast<ptrdiff_t>(from.size()) - 2) = '9';
  }
  const std::string text = "this is not a model file, just some text";
  const struct {
    const char* what;
    Bytes bytes;
    const char* code;
  } cases[] = {
      {"not a detector", not_detector, "bad_graph:"},
      {"garbage", Bytes(text.begin(), text.end()), "bad_magic:"},
      {"truncated", Bytes(good.begin(), good.begin() + static_cast<ptrdiff_t>(good.size() / 2)),
       "truncated:"},
      {"wrong version", wrong_version, "bad_version:"},
      {"empty", Bytes(), "invalid_argument:"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string err = LoadInto(&d, c.bytes);
    EXPECT_EQ(err.rfind(c.code, 0), 0u) << err;
    ASSERT_TRUE(d.loaded());
    ASSERT_EQ(detect(), "");  // the previous model still works, same score
    EXPECT_EQ(d.stats()[WebDetector::kScore], score);
  }
  // Corrupt / truncated / non-image bytes for detectEncoded().
  for (const Bytes& img : {Bytes{0x89, 'P', 'N', 'G', 1, 2, 3}, Bytes(300, 0x5a),
                           Bytes{'h', 'e', 'l', 'l', 'o'}}) {
    std::memcpy(d.buffer(static_cast<double>(img.size())), img.data(), img.size());
    const std::string err = d.detectEncoded();
    EXPECT_EQ(err.rfind("bad_image:", 0), 0u) << err;
    EXPECT_EQ(d.map(), nullptr);  // no stale map after a failed call
  }
  // Pixel buffers that do not match the claimed size / format.
  d.buffer(10);
  EXPECT_EQ(d.detect(64, 64, "rgba", 0, 0, 0, 0).rfind("invalid_argument:", 0), 0u);
  EXPECT_EQ(d.detect(50000, 50000, "gray", 0, 0, 0, 0).rfind("invalid_argument:", 0), 0u);
  EXPECT_EQ(d.detect(4, 4, "bgr", 0, 0, 0, 0).rfind("invalid_argument:", 0), 0u);
  EXPECT_EQ(d.buffer(-1), nullptr);
  EXPECT_EQ(d.buffer(1e18), nullptr);
}

// ---- executor limits -----------------------------------------------------------

// kMaxArenaBytes is enforced before allocation: every activation here is
// within kMaxActivationElements (each 2048x2048x16 = 64 Mi floats, 256 MiB),
// but four of them are live at once (1 GiB + the input) -> kLimitExceeded.
TEST(ExecutorLimits, ArenaLimitIsEnforcedBeforeAllocating) {
  SpecBuilder b(2048, 2048, 3);
  b.Conv("a", "input", 16, 1).Conv("b", "input", 16, 1).Conv("c", "input", 16, 1)
      .Conv("d", "input", 16, 1).Add("ab", "a", "b").Add("cd", "c", "d").Add("out", "ab", "cd");
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = 2048;
  const Bytes bytes = WriteModel(b.Build("out", pre));
  auto m = LoadModel(bytes.data(), bytes.size());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  for (BackendKind kind : {BackendKind::kReference, BackendKind::kSimd}) {
    auto ex = CreateExecutor((*m)->graph, {kind, 1});
    ASSERT_FALSE(ex.ok());
    EXPECT_EQ(ex.status().code(), ErrorCode::kLimitExceeded) << ex.status().ToString();
  }
}

// Bug: XNNPACK's conv / pool setup allocates an indirection buffer of
// out_h * out_w * kernel_h * kernel_w pointers outside the arena: a valid
// 31x31 conv or max pool on a 512x512 map asked for 2 GiB (and 516 GiB at the
// limits). Such nodes now fall back to the SIMD kernels.
TEST(ExecutorLimits, XnnpackIndirectionBufferIsBounded) {
  if (!HaveXnnpack()) GTEST_SKIP() << "no XNNPACK in this build";
  SpecBuilder b(512, 512, 1);
  b.Conv("big", "input", 1, 31, 1, 15).MaxPool("pool", "big", 31, 1, 15)
      .Conv("small", "pool", 1, 3, 1, 1);
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = 512;
  pre.channels = 1;
  const Bytes bytes = WriteModel(b.Build("small", pre));
  auto m = LoadModel(bytes.data(), bytes.size());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto ex = CreateExecutor((*m)->graph, {BackendKind::kXnnpack, 1});
  ASSERT_TRUE(ex.ok()) << ex.status().ToString();
  const std::vector<std::string> names = (*ex)->KernelNames();
  ASSERT_EQ(names.size(), 3u);
  EXPECT_EQ(names[0].find("xnnpack"), std::string::npos) << names[0];
  EXPECT_EQ(names[1].find("xnnpack"), std::string::npos) << names[1];
  EXPECT_NE(names[2].find("xnnpack"), std::string::npos) << names[2];  // 3x3: 18 MiB, fine
}

// ---- images ------------------------------------------------------------------

// LSB-first bit writer for a raw DEFLATE stream.
class BitWriter {
 public:
  void Bits(uint32_t v, int n) {  // v's low n bits, LSB first
    for (int i = 0; i < n; ++i) Push((v >> i) & 1);
  }
  void Code(uint32_t code, int n) {  // Huffman code, MSB first
    for (int i = n - 1; i >= 0; --i) Push((code >> i) & 1);
  }
  Bytes Finish() {
    if (nbits_) out_.push_back(cur_);
    return out_;
  }

 private:
  void Push(uint32_t bit) {
    cur_ |= static_cast<uint8_t>(bit << nbits_);
    if (++nbits_ == 8) {
      out_.push_back(cur_);
      cur_ = 0;
      nbits_ = 0;
    }
  }
  Bytes out_;
  uint8_t cur_ = 0;
  int nbits_ = 0;
};

void Be32(Bytes* b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b->push_back(static_cast<uint8_t>(v >> s));
}

void Chunk(Bytes* png, const char* type, const Bytes& body) {
  Be32(png, static_cast<uint32_t>(body.size()));
  png->insert(png->end(), type, type + 4);
  png->insert(png->end(), body.begin(), body.end());
  Be32(png, 0);  // CRC (stb does not check it)
}

// A w x h 8-bit gray PNG whose IDAT is a zlib stream inflating to
// `inflated` zero bytes (a "zlib bomb": ~13 bits per 258 output bytes).
Bytes ZlibBombPng(int w, int h, bool interlaced, uint32_t inflated) {
  BitWriter bw;
  bw.Bits(1, 1);               // BFINAL
  bw.Bits(1, 2);               // BTYPE = fixed Huffman
  bw.Code(0x30, 8);            // literal 0
  uint32_t left = inflated - 1;
  while (left >= 258) {
    bw.Code(0xC5, 8);          // length code 285 = 258 bytes
    bw.Code(0, 5);             // distance code 0 = 1
    left -= 258;
  }
  while (left-- > 0) bw.Code(0x30, 8);
  bw.Code(0, 7);               // end of block
  Bytes idat = {0x78, 0x01};   // zlib header (no dictionary)
  const Bytes deflate = bw.Finish();
  idat.insert(idat.end(), deflate.begin(), deflate.end());
  Be32(&idat, 0);              // Adler-32 (not checked by stb)

  Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  Bytes ihdr;
  Be32(&ihdr, static_cast<uint32_t>(w));
  Be32(&ihdr, static_cast<uint32_t>(h));
  ihdr.insert(ihdr.end(), {8, 0, 0, 0, static_cast<uint8_t>(interlaced ? 1 : 0)});
  Chunk(&png, "IHDR", ihdr);
  Chunk(&png, "IDAT", idat);
  Chunk(&png, "IEND", {});
  return png;
}

// Bug: stb_image grows a PNG's zlib output buffer until the stream ends, so a
// ~60 KB 1x1 PNG made stb allocate (and fill) 32 MiB, and a 4 MB one 4 GiB;
// an interlaced one even decoded "successfully". Every stb allocation is now
// capped by what a valid file of the header's size needs (image/stb_alloc.h).
TEST(DecodeHostile, PngZlibBombIsRejectedWithoutInflating) {
  for (bool interlaced : {false, true}) {
    SCOPED_TRACE(interlaced ? "interlaced" : "not interlaced");
    const Bytes png = ZlibBombPng(1, 1, interlaced, 32u << 20);
    ASSERT_LT(png.size(), 256u * 1024);
    auto img = DecodeImage(png.data(), png.size());
    ASSERT_FALSE(img.ok());
    EXPECT_EQ(img.status().code(), ErrorCode::kBadImage) << img.status().ToString();
  }
  // The same construction with exactly the right amount of data decodes: the
  // cap does not reject valid files (3x2 gray: 2 rows of filter byte + 3 px).
  const Bytes ok = ZlibBombPng(3, 2, false, 2 * (1 + 3));
  auto img = DecodeImage(ok.data(), ok.size());
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  EXPECT_EQ(img->width, 3);
  EXPECT_EQ(img->height, 2);
}

// An IDAT chunk that declares 2 GiB in a 60-byte file: stb allocated the
// declared length before noticing the file is short. Now a clean kBadImage
// without the allocation (the cap for 1x1 is 1 MiB). The result was
// kBadImage before too; this test pins the result, not the allocation.
TEST(DecodeHostile, PngChunkLengthLargerThanFileIsRejected) {
  Bytes png = ZlibBombPng(1, 1, false, 2);
  // Patch the IDAT length (after signature 8 + IHDR chunk 25 bytes).
  const size_t at = 8 + 25;
  ASSERT_EQ(std::memcmp(png.data() + at + 4, "IDAT", 4), 0);
  png[at] = 0x7f;
  png[at + 1] = 0xff;
  png[at + 2] = 0xff;
  png[at + 3] = 0x00;
  auto img = DecodeImage(png.data(), png.size());
  ASSERT_FALSE(img.ok());
  EXPECT_EQ(img.status().code(), ErrorCode::kBadImage) << img.status().ToString();
}

// Found by fuzz_image (tests/fuzz/regressions/fuzz_image/timeout-bmp-negative-
// compression, a 10 s timeout): a 60-byte BMP whose compression field is
// 0xaf000001. stb reads the field as a negative int, so neither its RLE nor
// its ">= 4" check fired, and DecodeImage skipped the completeness check for
// unknown compressions: the file "decoded" to a 568x13824 all-black image.
TEST(DecodeHostile, BmpUnknownCompressionIsBadImage) {
  const Bytes fuzz = ReadFile(std::filesystem::path(FLAWLENS_SOURCE_DIR) /
                              "tests/fuzz/regressions/fuzz_image/timeout-bmp-negative-compression");
  ASSERT_GT(fuzz.size(), 4u);
  auto r = DecodeImage(fuzz.data() + 4, fuzz.size() - 4);  // 4 config bytes of fuzz_image
  ASSERT_FALSE(r.ok()) << r->width << "x" << r->height;
  EXPECT_EQ(r.status().code(), ErrorCode::kBadImage) << r.status().ToString();

  // The same for a hand-made 4x4 24-bit BMP with complete pixel data.
  for (uint32_t compression : {0x80000000u, 0xaf000001u, 4u, 5u, 6u, 1u, 2u}) {
    Bytes bmp(54 + 4 * 12, 0x40);
    auto le32 = [&](size_t at, uint32_t v) {
      for (int i = 0; i < 4; ++i) bmp[at + i] = static_cast<uint8_t>(v >> (8 * i));
    };
    bmp[0] = 'B';
    bmp[1] = 'M';
    le32(2, static_cast<uint32_t>(bmp.size()));
    le32(6, 0);
    le32(10, 54);
    le32(14, 40);
    le32(18, 4);
    le32(22, 4);
    bmp[26] = 1;
    bmp[27] = 0;
    bmp[28] = 24;
    bmp[29] = 0;
    le32(30, compression);
    le32(34, 0);
    for (size_t i = 38; i < 54; ++i) bmp[i] = 0;
    auto bad = DecodeImage(bmp.data(), bmp.size());
    ASSERT_FALSE(bad.ok()) << "compression " << compression;
    EXPECT_EQ(bad.status().code(), ErrorCode::kBadImage) << bad.status().ToString();
    le32(30, 0);  // the same file uncompressed decodes
    auto good = DecodeImage(bmp.data(), bmp.size());
    ASSERT_TRUE(good.ok()) << good.status().ToString();
    EXPECT_EQ(good->width, 4);
    EXPECT_EQ(good->height, 4);
  }
}

// Found by fuzz_image (tests/fuzz/regressions/fuzz_image/crash-jpeg-dht-
// overflow-behind-fill-bytes): a DHT segment after a run of 0xFF fill bytes
// whose code counts sum to 620 -- stb 2.27 writes past stbi__huffman::size.
// DecodeImage's own marker walk rejects it before stb sees it (the harness
// had called stbi_info() first, which builds the tables too).
TEST(DecodeHostile, JpegHuffmanOverflowBehindFillBytes) {
  const Bytes fuzz = ReadFile(std::filesystem::path(FLAWLENS_SOURCE_DIR) /
                              "tests/fuzz/regressions/fuzz_image/"
                              "crash-jpeg-dht-overflow-behind-fill-bytes");
  ASSERT_GT(fuzz.size(), 4u);
  auto r = DecodeImage(fuzz.data() + 4, fuzz.size() - 4);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kBadImage) << r.status().ToString();
  EXPECT_NE(r.status().message().find("Huffman"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace flawlens
