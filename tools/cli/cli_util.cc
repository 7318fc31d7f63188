#include "cli/cli_util.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include <unistd.h>

#include "cli/dataset.h"
#include "cli/metrics.h"
#include "core/limits.h"
#include "model/safetensors.h"

// stb_image_write with private (static) symbols: other tools/ files may
// compile their own copy without clashing.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace flawlens::cli {

Result<LoadedModel> LoadModelFile(const std::string& path) {
  LoadedModel lm;
  lm.path = path;
  FLAWLENS_ASSIGN_OR_RETURN(lm.bytes, ReadFileBytes(path, kMaxModelBytes));
  auto model = LoadModel(lm.bytes.data(), lm.bytes.size());
  if (!model.ok()) {
    return Status(model.status().code(), "model '" + path + "': " + model.status().message());
  }
  lm.model = std::move(model).value();
  return lm;
}

Result<std::vector<std::unique_ptr<Detector>>> MakeDetectors(const LoadedModel& model, int count,
                                                            const DetectorOptions& options) {
  std::vector<std::unique_ptr<Detector>> out;
  for (int i = 0; i < std::max(count, 1); ++i) {
    auto det = Detector::Create(model.bytes.data(), model.bytes.size(), options);
    if (!det.ok()) {
      return Status(det.status().code(), "model '" + model.path + "': " + det.status().message());
    }
    out.push_back(std::move(det).value());
  }
  return out;
}

int ResolveThreads(int requested) {
  if (requested > 0) return requested;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

void ParallelFor(int n, int workers, const std::function<void(int, int)>& fn) {
  workers = std::max(1, std::min(workers, n));
  if (workers <= 1) {
    for (int i = 0; i < n; ++i) fn(0, i);
    return;
  }
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      for (int i = next++; i < n; i = next++) fn(w, i);
    });
  }
  for (std::thread& t : threads) t.join();
}

namespace {
void AppendBytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}
}  // namespace

std::vector<uint8_t> EncodePng(const uint8_t* pixels, int width, int height, int channels) {
  std::vector<uint8_t> out;
  if (pixels == nullptr || width <= 0 || height <= 0 || channels < 1 || channels > 4) return out;
  if (!stbi_write_png_to_func(AppendBytes, &out, width, height, channels, pixels,
                              width * channels)) {
    out.clear();
  }
  return out;
}

Status WriteFileBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return MakeError(ErrorCode::kInvalidArgument, "cannot write '%s'", path.c_str());
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    f.close();
    if (!f) {
      std::remove(tmp.c_str());
      return MakeError(ErrorCode::kInvalidArgument, "cannot write '%s'", path.c_str());
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return MakeError(ErrorCode::kInvalidArgument, "cannot write '%s'", path.c_str());
  }
  return Status::Ok();
}

Status CollectImageInputs(const std::vector<std::string>& inputs, std::vector<std::string>* files,
                          std::vector<std::string>* rel) {
  namespace fs = std::filesystem;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      fs::recursive_directory_iterator it(in, fs::directory_options::skip_permission_denied, ec),
          end;
      for (; !ec && it != end; it.increment(ec)) {
        std::error_code ec2;
        if (it->is_regular_file(ec2) && IsImageFile(it->path().string())) {
          found.push_back(it->path().string());
        }
      }
      std::sort(found.begin(), found.end());
      for (const std::string& f : found) {
        files->push_back(f);
        std::string r = fs::path(f).lexically_relative(in).replace_extension().string();
        for (size_t p = r.find('/'); p != std::string::npos; p = r.find('/')) r.replace(p, 1, "__");
        rel->push_back(r);
      }
    } else {
      // A file, or a missing one: still listed, so the caller reports it.
      files->push_back(in);
      rel->push_back(fs::path(in).stem().string());
    }
  }
  if (files->empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "no images (png/jpg/jpeg/bmp) in the inputs");
  }
  return Status::Ok();
}

Result<std::vector<uint8_t>> ReplaceModelMetadata(
    const std::vector<uint8_t>& file, const std::vector<std::pair<std::string, std::string>>& entries) {
  // The framing (length, limits, JSON, metadata strings) is checked by the
  // one header reader; the rewrite edits the header text in document order so
  // that everything not replaced keeps its bytes.
  FLAWLENS_ASSIGN_OR_RETURN(SafetensorsHeader h, ReadSafetensorsHeader(file.data(), file.size()));
  if (!h.has_metadata) {
    return MakeError(ErrorCode::kInvalidArgument, "model header has no __metadata__ object");
  }
  nlohmann::ordered_json header = nlohmann::ordered_json::parse(
      file.begin() + 8, file.begin() + static_cast<std::ptrdiff_t>(h.data_offset), nullptr, false);
  for (const auto& [key, value] : entries) header["__metadata__"][key] = value;
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  std::vector<uint8_t> out(8);
  WriteHeaderLength(text.size(), out.data());
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), file.begin() + static_cast<std::ptrdiff_t>(h.data_offset), file.end());
  return out;
}

std::string Base64(const std::vector<uint8_t>& bytes) {
  static const char kTable[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += kTable[(v >> 18) & 63];
    out += kTable[(v >> 12) & 63];
    out += kTable[(v >> 6) & 63];
    out += kTable[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = bytes[i] << 16;
    out += kTable[(v >> 18) & 63];
    out += kTable[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += kTable[(v >> 18) & 63];
    out += kTable[(v >> 12) & 63];
    out += kTable[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

Image ToRgb(const Image& image) {
  Image out;
  out.width = image.width;
  out.height = image.height;
  out.format = PixelFormat::kRGB8;
  const size_t n = static_cast<size_t>(image.width) * image.height;
  out.pixels.resize(n * 3);
  const int bpp = BytesPerPixel(image.format);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = image.pixels.data() + i * bpp;
    if (image.format == PixelFormat::kGray8) {
      out.pixels[i * 3] = out.pixels[i * 3 + 1] = out.pixels[i * 3 + 2] = p[0];
    } else {
      out.pixels[i * 3] = p[0];
      out.pixels[i * 3 + 1] = p[1];
      out.pixels[i * 3 + 2] = p[2];
    }
  }
  return out;
}

Image ShrinkRgb(const Image& rgb, int max_side) {
  const int side = std::max(rgb.width, rgb.height);
  if (side <= max_side || max_side <= 0) return rgb;
  const double f = static_cast<double>(max_side) / side;
  Image out;
  out.format = PixelFormat::kRGB8;
  out.width = std::max(1, static_cast<int>(std::lround(rgb.width * f)));
  out.height = std::max(1, static_cast<int>(std::lround(rgb.height * f)));
  out.pixels.assign(static_cast<size_t>(out.width) * out.height * 3, 0);
  // Box filter over the source footprint of each output pixel.
  const double sx = static_cast<double>(rgb.width) / out.width;
  const double sy = static_cast<double>(rgb.height) / out.height;
  for (int y = 0; y < out.height; ++y) {
    const int y0 = static_cast<int>(y * sy);
    const int y1 = std::max(y0 + 1, std::min(rgb.height, static_cast<int>((y + 1) * sy)));
    for (int x = 0; x < out.width; ++x) {
      const int x0 = static_cast<int>(x * sx);
      const int x1 = std::max(x0 + 1, std::min(rgb.width, static_cast<int>((x + 1) * sx)));
      uint32_t acc[3] = {0, 0, 0};
      for (int yy = y0; yy < y1; ++yy) {
        const uint8_t* row = rgb.pixels.data() + (static_cast<size_t>(yy) * rgb.width) * 3;
        for (int xx = x0; xx < x1; ++xx) {
          for (int c = 0; c < 3; ++c) acc[c] += row[xx * 3 + c];
        }
      }
      const uint32_t count = static_cast<uint32_t>((y1 - y0) * (x1 - x0));
      for (int c = 0; c < 3; ++c) {
        out.pixels[(static_cast<size_t>(y) * out.width + x) * 3 + c] =
            static_cast<uint8_t>((acc[c] + count / 2) / count);
      }
    }
  }
  return out;
}

void MapDisplayRange(const Model& model, float* low, float* high) {
  *low = model.calibration.map_low;
  *high = model.calibration.map_high;
  if (!(std::isfinite(*low) && std::isfinite(*high) && *high > *low)) {
    *low = 0.0f;
    *high = 1.0f;
  }
}

std::string FormatMetric(double v, int decimals) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

Result<bool> CardRoi(const Model& model, RectF* fractions) {
  const nlohmann::json card = nlohmann::json::parse(model.card_json, nullptr, false);
  if (!card.is_object() || !card.contains("roi") || card["roi"].is_null()) return false;
  const nlohmann::json& r = card["roi"];
  double v[4] = {0, 0, 0, 0};
  const char* keys[4] = {"x", "y", "w", "h"};
  bool ok = r.is_object();
  for (int i = 0; ok && i < 4; ++i) {
    ok = r.contains(keys[i]) && r[keys[i]].is_number();
    if (ok) v[i] = r[keys[i]].get<double>();
    ok = ok && std::isfinite(v[i]);
  }
  // The page's own test of a stored region (web/js/ui/camera.mjs validFraction).
  ok = ok && v[0] >= 0 && v[1] >= 0 && v[2] > 0 && v[3] > 0 && v[0] + v[2] <= 1.000001 &&
       v[1] + v[3] <= 1.000001;
  if (!ok) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "the model card's \"roi\" is not {x, y, w, h} in fractions of the image "
                     "(got %s); --no-roi scores whole images",
                     r.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  *fractions = RectF{float(v[0]), float(v[1]), float(v[2]), float(v[3])};
  return !(v[0] == 0 && v[1] == 0 && v[2] >= 1 && v[3] >= 1);  // the whole image: no region
}

RectF RoiPixels(const RectF& f, int width, int height) {
  // JavaScript's Math.round: halves round up.
  if (width < 2 || height < 2) return RectF{};  // too small for a region: the whole image
  auto round = [](double v) { return std::floor(v + 0.5); };
  const double w = width, h = height;
  const double x = std::min(w - 2, round(double(f.x) * w)),
               y = std::min(h - 2, round(double(f.y) * h));
  const double rw = std::max(2.0, std::min(w - x, round(double(f.w) * w)));
  const double rh = std::max(2.0, std::min(h - y, round(double(f.h) * h)));
  return RectF{float(x), float(y), float(rw), float(rh)};
}

}  // namespace flawlens::cli
