// Teaching in the page, the C++ side: a thin facade over fit::Teacher
// (src/fit/teacher.h, the same code `flawlens train --backbone` runs), free of
// Embind so it can be fuzzed and tested natively; src/wasm/bindings.cc binds
// it 1:1 as the module's `Teacher` class. Methods are named as JavaScript
// sees them (camelCase), like WebDetector.
//
//   t.buffer(n) <- model bytes;  t.begin(optionsJson)   (a backbone or taught model)
//   for each good frame: t.buffer(n) <- pixels;  t.addFrame(w, h, "rgba", roi)
//   t.fit(optionsJson, progress);  t.model() -> model file, t.result() -> JSON
//
// Every fallible method returns "" on success or "code: message"
// (web/js/engine.mjs turns it into a FlawlensError). Besides the core's codes
// (status.h) the teacher has its own, for messages the page shows:
//   no_backbone   the model has no pretrained backbone to teach on
//   black_frame   a frame without contrast (black, covered or blank camera)
//   frozen_frame  a frame identical to the previous one (a stalled camera)
//   too_few       not enough frames (or distinct parts / time blocks) to fit and to
//                 check the threshold on frames the fit did not see
//   degenerate    the frames give identical features: nothing to learn
//   no_teacher    begin() has not succeeded
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace flawlens {

namespace fit {
class Teacher;
}

class WebTeacher {
 public:
  // A frame whose luma standard deviation (0..255 levels, inside the region)
  // is below this is a black / blank frame: no part to learn from.
  static constexpr double kBlankStd = 2.0;

  WebTeacher();
  ~WebTeacher();

  // Resize the byte buffer (model bytes or pixels); nullptr when the size is
  // unreasonable.
  uint8_t* buffer(double bytes);
  size_t bufferSize() const { return bytes_.size(); }
  void releaseBytes();

  // Creates the teacher from the model file in buffer() (released after).
  // options: JSON object, optional "seed" (uint32), "dims" (1..1024) and
  // "threads" (1..64, what its executor splits ops over; default 1).
  // On failure the previous teacher (if any) stays.
  std::string begin(const std::string& options_json);
  bool ready() const { return teacher_ != nullptr; }
  // JSON: {mapWidth, mapHeight, dims, featureChannels, featureNode,
  //        minImages (the fewest images fit() accepts),
  //        backbone: {name, licence}} ("{}" before begin()).
  std::string info() const;

  // Pixels are in buffer(): width * height * bpp bytes, rows packed; the
  // region (pixels, rw == 0: whole frame) is what the model sees. `group`:
  // "" for a camera frame (frames are checked in contiguous time blocks),
  // else a name shared by the photos of one part (e.g. the file name).
  // Checks the frame (black_frame, frozen_frame) before adding it.
  std::string addFrame(int width, int height, const std::string& format, double rx, double ry,
                       double rw, double rh, const std::string& group);
  int images() const;

  // Fits the model. options: JSON object, optional "name", "created",
  // "sensitivity" ([0, 1], fit::SensitivityToRate) or "falseAlarmRate",
  // "density" ("per_position" | "shared"), "card" (an object merged into the
  // model card). Keeps the frames: fit() may be called again.
  // progress(fraction) is called while fitting.
  std::string fit(const std::string& options_json, const std::function<void(float)>& progress);
  const uint8_t* model() const { return model_.data(); }
  size_t modelSize() const { return model_.size(); }
  void releaseModel();
  // JSON of the last fit: {calibration: {offset, scale, threshold, mapLow,
  // mapHigh, falseAlarmRate, goodImages, goodGroups}, images, groups, folds,
  // meanShrinkage, warnings: [..]} ("{}" before one).
  std::string result() const { return result_json_; }

 private:
  std::unique_ptr<fit::Teacher> teacher_;
  std::string info_json_ = "{}";
  std::vector<uint8_t> bytes_, model_;
  std::string result_json_ = "{}";
  uint64_t last_hash_ = 0;  // of the last frame added (0: none yet)
};

}  // namespace flawlens
