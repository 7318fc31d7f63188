// Helpers shared by the eval / score / info / bench commands: model loading,
// worker pools with one Detector each, PNG encoding, base64, heatmap overlays.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "flawlens/detector.h"
#include "flawlens/image.h"
#include "flawlens/status.h"
// Model: calibrate and info rewrite and print what ModelInfo does not carry
// (calibration, card, preprocessing); see flawlens/detector.h.
#include "model/model.h"

namespace flawlens::cli {

// A model file read once: its bytes (to create one Detector per worker) and
// the parsed Model (preprocess / calibration / card for display).
struct LoadedModel {
  std::string path;
  std::vector<uint8_t> bytes;
  std::unique_ptr<Model> model;
};
Result<LoadedModel> LoadModelFile(const std::string& path);

// `count` detectors (count >= 1), each single-threaded unless options say so.
Result<std::vector<std::unique_ptr<Detector>>> MakeDetectors(const LoadedModel& model, int count,
                                                            const DetectorOptions& options = {});

// Worker count: `requested` if > 0, else the hardware concurrency (>= 1).
int ResolveThreads(int requested);

// Calls fn(worker, index) for index in [0, n) on `workers` threads; each index
// once, each worker id used by one thread at a time.
void ParallelFor(int n, int workers, const std::function<void(int worker, int index)>& fn);

// 8-bit RGB image -> PNG bytes (stb_image_write to memory). Empty on failure.
std::vector<uint8_t> EncodePng(const uint8_t* pixels, int width, int height, int channels);
// Writes through a temporary file in the same folder and renames it over
// `path`, so a failed or interrupted write never leaves a truncated file or
// destroys the one that was there.
Status WriteFileBytes(const std::string& path, const std::vector<uint8_t>& bytes);
std::string Base64(const std::vector<uint8_t>& bytes);

// Any decoded image -> RGB8.
Image ToRgb(const Image& image);
// Shrinks an RGB8 image so that the longer side is <= max_side (never
// enlarges), averaging the source pixels under each output pixel (box filter).
Image ShrinkRgb(const Image& rgb, int max_side);

// The image with its anomaly map (normalised units; map_rect as in
// Detection) blended on top: map values in [low, high] go through the
// heatmap colour map the page uses (cli/colormap.h). Returns RGB8 at image size.
Image RenderOverlay(const Image& image, const std::vector<float>& map, int map_width,
                    int map_height, const RectF& map_rect, float low, float high);

// Display range of the anomaly map stored in the model's calibration.
void MapDisplayRange(const Model& model, float* low, float* high);

// Image files named on a command line: a file as given (also a missing one,
// so the caller can report it), a folder recursively (png/jpg/jpeg/bmp,
// sorted). `rel` receives a flat name per file for derived outputs (path
// relative to its folder argument, separators -> "__"). Error if none.
Status CollectImageInputs(const std::vector<std::string>& inputs, std::vector<std::string>* files,
                          std::vector<std::string>* rel);

// A copy of a valid model file (LoadModel accepted it) with some of its
// `__metadata__` strings replaced (e.g. "calibration", "card"); tensors and
// their bytes are unchanged, the header keeps its key order and is padded
// so the data region stays 8-byte aligned.
Result<std::vector<uint8_t>> ReplaceModelMetadata(
    const std::vector<uint8_t>& file, const std::vector<std::pair<std::string, std::string>>& entries);

// The region of interest a model card stores ("roi": {x, y, w, h} in
// fractions of the image; a model taught in the page keeps the camera region
// it was taught in). False when the card has none (absent or null); an error
// naming the card field when it is malformed.
Result<bool> CardRoi(const Model& model, RectF* fractions);
// Fractions -> pixels of a width x height image (smaller than 2 x 2: the
// whole image, w == 0), rounded the way the page does (web/js/ui/camera.mjs modelRoiPixels), so
// the CLI scores the pixels the page scored.
RectF RoiPixels(const RectF& fractions, int width, int height);

// "1.2345" or "null" (NaN / inf) for JSON, "-" for tables.
std::string FormatMetric(double v, int decimals = 4);
std::string CsvField(const std::string& s);

}  // namespace flawlens::cli
