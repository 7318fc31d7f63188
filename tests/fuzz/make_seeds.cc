// Writes the committed seed corpora: tests/fuzz/corpus/<target>/...
//   build/fuzz/tests/fuzz/make_fuzz_seeds tests/fuzz/corpus
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "test_models.h"

namespace {

void Write(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) { std::perror(path.c_str()); std::exit(1); }
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

void Append(void* ctx, void* data, int size) {
  auto* v = static_cast<std::vector<uint8_t>*>(ctx);
  v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

std::vector<uint8_t> Pixels(int w, int h, int c) {
  std::vector<uint8_t> px(size_t(w) * h * c);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 37) ^ (i >> 3));
  return px;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) { std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]); return 2; }
  const std::string dir = argv[1];
  using flawlens::WriteModel;
  namespace t = flawlens::testing;
  const std::vector<uint8_t> micro = WriteModel(t::MicroSpec());
  Write(dir + "/fuzz_model_loader/micro.safetensors", micro);
  Write(dir + "/fuzz_model_loader/tiny_unet.safetensors", WriteModel(t::TinyUnetSpec()));

  // Structure-aware model seeds: graph \0 preprocess \0 postprocess \0
  // calibration \0 tensor shapes \0 flags + pixels.
  auto json_seed = [&](const flawlens::ModelSpec& spec, const std::string& name, uint8_t flags) {
    std::string shapes = "{";
    for (size_t i = 0; i < spec.tensors.size(); ++i) {
      shapes += (i ? ",\"" : "\"") + spec.tensors[i].name + "\":[";
      for (size_t k = 0; k < spec.tensors[i].shape.size(); ++k)
        shapes += (k ? "," : "") + std::to_string(spec.tensors[i].shape[k]);
      shapes += "]";
    }
    shapes += "}";
    std::string s = spec.graph_json + '\0' + spec.preprocess_json + '\0' + spec.postprocess_json +
                    '\0' + spec.calibration_json + '\0' + shapes + '\0';
    s.push_back(static_cast<char>(flags));
    Write(dir + "/fuzz_model_json/" + name + ".txt", std::vector<uint8_t>(s.begin(), s.end()));
  };
  json_seed(t::MicroSpec(), "micro", 0);
  json_seed(t::TinyUnetSpec(), "tiny_unet", 1);
  json_seed(t::SeedCnnSpec(true), "seed_cnn", 3);
  {
    // Odd shapes: grouped strided conv with asymmetric-size input, avg pool
    // without padding counted, bilinear x3, dense head.
    t::SpecBuilder b(9, 13, 3, 11);
    b.Conv("a", "input", 6, 3, 2, 1, "silu", /*groups=*/3)
        .Pool("p", "a", /*max=*/false, 2, 1, 1, /*count_include_pad=*/false)
        .Upsample("u", "p", "bilinear", 3)
        .Conv("h", "u", 1, 1, 1, 0, "sigmoid");
    flawlens::PreprocessConfig pre;
    pre.resize_w = 13;
    pre.resize_h = 9;
    pre.channels = 3;
    pre.norm = flawlens::NormMode::kLocalContrast;
    pre.lcn_sigma = 2.0f;
    json_seed(b.Build("h", pre, R"({"reduce":"topk_mean","topk_fraction":0.1,"blur_sigma":0.8})"),
              "odd_shapes", 1);
  }

  // Images: prefix bytes for fuzz_image's config (4 bytes), then the file.
  std::vector<std::vector<uint8_t>> images;
  for (int c : {1, 3, 4}) {
    std::vector<uint8_t> png, bmp, jpg;
    const std::vector<uint8_t> px = Pixels(9, 7, c);
    stbi_write_png_to_func(Append, &png, 9, 7, c, px.data(), 9 * c);
    stbi_write_bmp_to_func(Append, &bmp, 9, 7, c, px.data());
    stbi_write_jpg_to_func(Append, &jpg, 9, 7, c, px.data(), 80);
    images.push_back(png);
    images.push_back(bmp);
    images.push_back(jpg);
  }
  int k = 0;
  for (const auto& img : images) {
    std::vector<uint8_t> seed = {17, 11, static_cast<uint8_t>(k * 5), 3};
    seed.insert(seed.end(), img.begin(), img.end());
    Write(dir + "/fuzz_image/img" + std::to_string(k) + ".bin", seed);
    ++k;
  }
  // Detector: header bytes + pixels.
  std::vector<uint8_t> det = {40, 30, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  const std::vector<uint8_t> px = Pixels(40, 30, 4);
  det.insert(det.end(), px.begin(), px.end());
  Write(dir + "/fuzz_detector/rgba40x30.bin", det);
  // Web API: u32 model length + model + w, h, format + encoded image.
  std::vector<uint8_t> web(4);
  const uint32_t n = static_cast<uint32_t>(micro.size());
  std::memcpy(web.data(), &n, 4);
  web.insert(web.end(), micro.begin(), micro.end());
  web.insert(web.end(), {8, 8, 2});
  web.insert(web.end(), images[0].begin(), images[0].end());
  Write(dir + "/fuzz_web_api/micro_png.bin", web);
  return 0;
}
