#include "synth/synth.h"

#include <cstdio>
#include <filesystem>
#include <system_error>

#include "core/status.h"
#include "synth/render.h"

// The one translation unit of tools/ that compiles stb_image_write.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace flawlens::synth {
namespace fs = std::filesystem;
namespace {

constexpr int kMinSide = 16, kMaxSide = 4096, kMaxCount = 100000;

int KindIndex(const std::string& kind) {
  const auto& kinds = SynthKinds();
  for (size_t i = 0; i < kinds.size(); ++i)
    if (kinds[i] == kind) return static_cast<int>(i);
  return -1;
}

int DefectIndex(const std::string& defect) {
  const auto& defects = SynthDefects();
  for (size_t i = 0; i < defects.size(); ++i)
    if (defects[i] == defect) return static_cast<int>(i);
  return -1;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

SynthImage ToImage(int w, int h, int channels, std::vector<uint8_t> pixels) {
  SynthImage img;
  img.width = w;
  img.height = h;
  img.channels = channels;
  img.pixels = std::move(pixels);
  return img;
}

std::string Stem(int index, int count) {
  int digits = 3;
  for (int n = count - 1; n >= 1000; n /= 10) ++digits;
  std::string s = std::to_string(index);
  if (static_cast<int>(s.size()) < digits) s.insert(0, digits - s.size(), '0');
  return s;
}

Status WriteFile(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::FILE* f = std::fopen(path.string().c_str(), "wb");
  if (f == nullptr) return MakeError(ErrorCode::kInvalidArgument, "synth: cannot create '%s'", path.string().c_str());
  const size_t n = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const int closed = std::fclose(f);
  if (n != bytes.size() || closed != 0)
    return MakeError(ErrorCode::kInternal, "synth: short write to '%s'", path.string().c_str());
  return Status::Ok();
}

Status MakeDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return MakeError(ErrorCode::kInvalidArgument, "synth: cannot create directory '%s': %s",
                           dir.string().c_str(), ec.message().c_str());
  return Status::Ok();
}

void StbWriteToVector(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

}  // namespace

const std::vector<std::string>& SynthKinds() {
  static const std::vector<std::string> kKinds = {"metal", "fabric", "tile"};
  return kKinds;
}

std::string SynthKindDescription(const std::string& kind) {
  if (kind == "metal") return "brushed / machined metal, gray";
  if (kind == "fabric") return "plain-weave denim-like fabric, RGB";
  if (kind == "tile") return "speckled glazed ceramic tile, RGB";
  return "";
}

const std::vector<std::string>& SynthDefects() {
  static const std::vector<std::string> kDefects = {"scratch", "crack", "stain",
                                                    "hole", "smear", "contamination"};
  return kDefects;
}

Status ValidateSynthOptions(const SynthOptions& o) {
  if (KindIndex(o.kind) < 0)
    return MakeError(ErrorCode::kInvalidArgument, "synth: unknown kind '%s' (kinds: %s)",
                     o.kind.c_str(), JoinNames(SynthKinds()).c_str());
  if (o.width < kMinSide || o.width > kMaxSide || o.height < kMinSide || o.height > kMaxSide)
    return MakeError(ErrorCode::kInvalidArgument, "synth: size %dx%d out of range %d..%d",
                     o.width, o.height, kMinSide, kMaxSide);
  if (o.train < 0 || o.val_good < 0 || o.val_defect < 0 || o.train > kMaxCount ||
      o.val_good > kMaxCount || o.val_defect > kMaxCount)
    return MakeError(ErrorCode::kInvalidArgument,
                     "synth: counts train=%d val-good=%d val-defect=%d must be in 0..%d", o.train,
                     o.val_good, o.val_defect, kMaxCount);
  return Status::Ok();
}

Result<SynthSample> RenderSynthSample(const SynthOptions& o, SynthSplit split,
                                      const std::string& defect, int index, bool with_clean) {
  FLAWLENS_RETURN_IF_ERROR(ValidateSynthOptions(o));
  const int kind = KindIndex(o.kind);
  const bool good = defect == "good";
  const int defect_index = good ? -1 : DefectIndex(defect);
  if (!good && defect_index < 0)
    return MakeError(ErrorCode::kInvalidArgument, "synth: unknown defect '%s' (defects: good, %s)",
                     defect.c_str(), JoinNames(SynthDefects()).c_str());
  if (index < 0) return MakeError(ErrorCode::kInvalidArgument, "synth: negative index %d", index);

  // Independent streams per image and per stage: the clean and the defective
  // version of a sample share texture, lighting and noise exactly.
  uint64_t seed = HashCombine(o.seed, 0x5EED0000u + kind);
  seed = HashCombine(seed, static_cast<uint64_t>(split) + 1);
  seed = HashCombine(seed, static_cast<uint64_t>(defect_index + 2));
  seed = HashCombine(seed, static_cast<uint64_t>(index));
  Rng texture_rng(HashCombine(seed, 1)), defect_rng(HashCombine(seed, 2)),
      light_rng(HashCombine(seed, 3));

  Surface surface = RenderSurface(static_cast<Kind>(kind), o.width, o.height, texture_rng);
  const Lighting lighting = RandomLighting(surface, light_rng);
  const int nc = static_cast<int>(surface.ch.size());

  SynthSample sample;
  sample.defect = defect;
  if (with_clean) sample.clean = ToImage(o.width, o.height, nc, ExposeSurface(surface, lighting));
  Plane mask(o.width, o.height);
  if (!good) {
    sample.severity = static_cast<float>(defect_rng.Uniform01());
    ApplyDefect(static_cast<Defect>(defect_index), sample.severity, surface, mask, defect_rng);
    bool any = false;
    for (float m : mask.v) any = any || m > 0.0f;
    if (!any)
      return MakeError(ErrorCode::kInternal, "synth: defect '%s' #%d produced an empty mask",
                       defect.c_str(), index);
  }
  sample.image = ToImage(o.width, o.height, nc, ExposeSurface(surface, lighting));
  std::vector<uint8_t> mask_px(mask.v.size());
  for (size_t i = 0; i < mask.v.size(); ++i) mask_px[i] = mask.v[i] > 0.0f ? 255 : 0;
  sample.mask = ToImage(o.width, o.height, 1, std::move(mask_px));
  return sample;
}

Result<std::vector<uint8_t>> EncodeSynthPng(const SynthImage& img) {
  if (img.width <= 0 || img.height <= 0 || (img.channels != 1 && img.channels != 3) ||
      img.pixels.size() != static_cast<size_t>(img.width) * img.height * img.channels)
    return MakeError(ErrorCode::kInvalidArgument, "synth: bad image %dx%dx%d (%zu bytes)", img.width,
                     img.height, img.channels, img.pixels.size());
  std::vector<uint8_t> out;
  const int ok = stbi_write_png_to_func(StbWriteToVector, &out, img.width, img.height, img.channels,
                                        img.pixels.data(), img.width * img.channels);
  if (ok == 0 || out.empty()) return MakeError(ErrorCode::kInternal, "synth: PNG encoding failed");
  return out;
}

Result<SynthSummary> WriteSynthDataset(const std::string& out_dir, const SynthOptions& o) {
  FLAWLENS_RETURN_IF_ERROR(ValidateSynthOptions(o));
  if (out_dir.empty()) return MakeError(ErrorCode::kInvalidArgument, "synth: empty output directory");
  const fs::path root(out_dir);
  for (const char* sub : {"train", "val"}) {
    std::error_code ec;
    const fs::path p = root / sub;
    if (!fs::exists(p, ec)) continue;
    if (!o.overwrite)
      return MakeError(ErrorCode::kInvalidArgument,
                       "synth: '%s' already exists (use --overwrite to replace it)", p.string().c_str());
    fs::remove_all(p, ec);
    if (ec) return MakeError(ErrorCode::kInvalidArgument, "synth: cannot remove '%s': %s",
                             p.string().c_str(), ec.message().c_str());
  }

  SynthSummary summary;
  auto emit = [&](const fs::path& rel, const SynthImage& img) -> Status {
    FLAWLENS_ASSIGN_OR_RETURN(std::vector<uint8_t> png, EncodeSynthPng(img));
    FLAWLENS_RETURN_IF_ERROR(MakeDir((root / rel).parent_path()));
    FLAWLENS_RETURN_IF_ERROR(WriteFile(root / rel, png));
    summary.files.push_back(rel.generic_string());
    return Status::Ok();
  };
  struct Job {
    SynthSplit split;
    const char* split_name;
    std::string defect;
    int count;
  };
  std::vector<Job> jobs = {{SynthSplit::kTrain, "train", "good", o.train},
                           {SynthSplit::kVal, "val", "good", o.val_good}};
  for (const auto& d : SynthDefects()) jobs.push_back({SynthSplit::kVal, "val", d, o.val_defect});
  for (const Job& job : jobs) {
    // Empty folders are still created so the layout is complete.
    FLAWLENS_RETURN_IF_ERROR(MakeDir(root / job.split_name / job.defect));
    if (job.defect != "good") FLAWLENS_RETURN_IF_ERROR(MakeDir(root / "val" / "masks" / job.defect));
    for (int i = 0; i < job.count; ++i) {
      FLAWLENS_ASSIGN_OR_RETURN(SynthSample s, RenderSynthSample(o, job.split, job.defect, i));
      const std::string name = Stem(i, job.count) + ".png";
      FLAWLENS_RETURN_IF_ERROR(emit(fs::path(job.split_name) / job.defect / name, s.image));
      if (job.defect != "good") {
        FLAWLENS_RETURN_IF_ERROR(emit(fs::path("val") / "masks" / job.defect / name, s.mask));
        ++summary.val_defect;
      } else if (job.split == SynthSplit::kTrain) {
        ++summary.train_good;
      } else {
        ++summary.val_good;
      }
    }
  }
  return summary;
}

}  // namespace flawlens::synth
