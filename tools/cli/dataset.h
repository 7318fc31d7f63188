// Folder datasets for training and evaluation.
//
// Accepted layouts (NAME is the folder given on the command line):
//
//   NAME/<split>/good/*.png            defect-free images
//   NAME/<split>/<defect>/*.png        defective images, one folder per type
//   NAME/<split>/masks/<defect>/<stem>.png        pixel masks (>127 = defect)
//   NAME/ground_truth/<defect>/<stem>_mask.png    MVTec AD style masks
//                                                 (also <stem>.png there)
//   NAME/*.png                         a flat folder: every image is "good"
//
// <split> is usually train / val / test. With no split requested, "val" is used,
// else "test"; if NAME itself has a "good" subfolder NAME is taken as the split
// folder. A flat folder (images directly in NAME) is used as is, whatever the
// split (its split name is then "flat").
//
// Image extensions: png, jpg, jpeg, bmp (case-insensitive). Samples are sorted
// by (type, path) with "good" first, so every run sees the same order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flawlens/status.h"

namespace flawlens::cli {

inline constexpr const char* kGoodType = "good";

struct Sample {
  std::string path;         // image file
  bool defective = false;   // false: "good"
  std::string defect_type;  // "good" for good images, else the folder name
  std::string mask_path;    // empty when there is no mask
};

struct Dataset {
  std::string root;                       // NAME as given
  std::string split;                      // "val", "test", "train", "flat", ...
  std::string split_dir;                  // folder the samples were read from
  std::vector<Sample> samples;            // good first, then defect types A..Z
  std::vector<std::string> defect_types;  // sorted, without "good"
  std::vector<std::string> warnings;      // e.g. an empty defect folder

  int num_good() const;
  int num_defective() const;
  int num_masks() const;
  std::vector<std::string> good_paths() const;
};

// Key that keeps captures of one part together (the trainer's hold-out, the
// eval's bootstrap): the file stem without a leading capture tag such as
// "exp3_" or "light2-".
std::string GroupKey(const std::string& path);

// `flawlens eval --groups FILE`: which images show the same part (drawn
// together by the AUROC bootstrap, in place of GroupKey). One "image,group"
// line per listed image; blank lines and lines starting with '#' are
// skipped. The image is its path relative to the split folder
// ("crack/exp1_num_85781.jpg") or, when unique in the split, its file name;
// the group label is everything after the last comma. Returns one label per
// sample of `ds`, "" where the file does not list it. Errors (naming the
// line): unreadable file, no comma, an empty name or label, an image that is
// not in the split, an ambiguous file name, an image listed twice.
Result<std::vector<std::string>> ReadGroupsFile(const std::string& path, const Dataset& ds);

// True for .png/.jpg/.jpeg/.bmp (any case).
bool IsImageFile(const std::string& path);

// Sorted image files directly inside `dir` (not recursive). Error when `dir`
// does not exist or is not a folder; an empty result is not an error.
Result<std::vector<std::string>> ListImages(const std::string& dir);

// Splits present under `root` (subfolders named train/val/test or holding a
// "good" folder), sorted.
std::vector<std::string> ListSplits(const std::string& root);

// Load a dataset; `split` empty = default (val, else test, see above).
// Errors: missing folder, unknown split (message lists the splits found),
// no images at all.
Result<Dataset> LoadDataset(const std::string& root, const std::string& split = "");

// Whole file into memory (at most kMaxImageFileBytes unless max_bytes given).
Result<std::vector<uint8_t>> ReadFileBytes(const std::string& path, uint64_t max_bytes = 0);

}  // namespace flawlens::cli
