#include "cli/dataset.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

#include "core/limits.h"
#include "core/status.h"

namespace flawlens::cli {
namespace fs = std::filesystem;

namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool IsDir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

bool IsFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// Sorted names of the subfolders of `dir`.
std::vector<std::string> SubDirs(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    if (IsDir(it->path())) out.push_back(it->path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A mask for image `image` of type `type`: see dataset.h for the places tried.
std::string FindMask(const fs::path& root, const fs::path& split_dir, const std::string& type,
                     const fs::path& image) {
  const std::string stem = image.stem().string();
  static const char* kExts[] = {".png", ".PNG", ".bmp", ".jpg", ".jpeg"};
  std::vector<fs::path> candidates;
  for (const char* ext : kExts) candidates.push_back(split_dir / "masks" / type / (stem + ext));
  for (const char* ext : kExts) {
    candidates.push_back(root / "ground_truth" / type / (stem + "_mask" + ext));
    candidates.push_back(root / "ground_truth" / type / (stem + ext));
  }
  for (const fs::path& c : candidates) {
    if (IsFile(c)) return c.string();
  }
  return "";
}

Status AddFolder(const fs::path& root, const fs::path& split_dir, const std::string& type,
                 const fs::path& dir, Dataset* ds) {
  FLAWLENS_ASSIGN_OR_RETURN(std::vector<std::string> files, ListImages(dir.string()));
  if (files.empty()) {
    ds->warnings.push_back("folder '" + dir.string() + "' holds no images (png/jpg/jpeg/bmp)");
    return Status::Ok();
  }
  const bool good = type == kGoodType;
  if (!good) ds->defect_types.push_back(type);
  for (const std::string& f : files) {
    Sample s;
    s.path = f;
    s.defective = !good;
    s.defect_type = type;
    if (!good) s.mask_path = FindMask(root, split_dir, type, fs::path(f));
    ds->samples.push_back(std::move(s));
  }
  return Status::Ok();
}

}  // namespace

int Dataset::num_good() const {
  return static_cast<int>(std::count_if(samples.begin(), samples.end(),
                                        [](const Sample& s) { return !s.defective; }));
}
int Dataset::num_defective() const { return static_cast<int>(samples.size()) - num_good(); }
int Dataset::num_masks() const {
  return static_cast<int>(std::count_if(samples.begin(), samples.end(),
                                        [](const Sample& s) { return !s.mask_path.empty(); }));
}
std::vector<std::string> Dataset::good_paths() const {
  std::vector<std::string> out;
  for (const Sample& s : samples) {
    if (!s.defective) out.push_back(s.path);
  }
  return out;
}

std::string GroupKey(const std::string& path) {
  std::string stem = fs::path(path).filename().string();
  const size_t dot = stem.find_last_of('.');
  if (dot != std::string::npos) stem = stem.substr(0, dot);
  // Leading "<letters><digits>" tag followed by '_' or '-' (exp3_, light2-, cam1_).
  size_t i = 0;
  while (i < stem.size() && std::isalpha(static_cast<unsigned char>(stem[i]))) ++i;
  size_t j = i;
  while (j < stem.size() && std::isdigit(static_cast<unsigned char>(stem[j]))) ++j;
  if (i > 0 && j > i && j < stem.size() && (stem[j] == '_' || stem[j] == '-') && j + 1 < stem.size())
    return stem.substr(j + 1);
  return stem;
}

bool IsImageFile(const std::string& path) {
  const std::string ext = Lower(fs::path(path).extension().string());
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

Result<std::vector<std::string>> ListImages(const std::string& dir) {
  if (!IsDir(dir)) {
    return MakeError(ErrorCode::kInvalidArgument, "folder '%s' does not exist or is not a folder",
                     dir.c_str());
  }
  std::vector<std::string> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) {
    return MakeError(ErrorCode::kInvalidArgument, "cannot read folder '%s': %s", dir.c_str(),
                     ec.message().c_str());
  }
  for (; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (IsFile(p) && IsImageFile(p.string())) out.push_back(p.string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> ListSplits(const std::string& root) {
  std::vector<std::string> out;
  for (const std::string& d : SubDirs(root)) {
    if (d == "train" || d == "val" || d == "test" || IsDir(fs::path(root) / d / kGoodType)) {
      out.push_back(d);
    }
  }
  return out;
}

Result<Dataset> LoadDataset(const std::string& root_str, const std::string& split) {
  const fs::path root(root_str);
  if (!IsDir(root)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "dataset folder '%s' does not exist or is not a folder", root_str.c_str());
  }
  Dataset ds;
  ds.root = root_str;

  // Flat folder of images: all good.
  FLAWLENS_ASSIGN_OR_RETURN(std::vector<std::string> top, ListImages(root_str));
  if (!top.empty()) {
    ds.split = "flat";
    ds.split_dir = root_str;
    FLAWLENS_RETURN_IF_ERROR(AddFolder(root, root, kGoodType, root, &ds));
    return ds;
  }

  fs::path split_dir;
  if (!split.empty()) {
    if (!IsDir(root / split)) {
      std::string found;
      for (const std::string& s : ListSplits(root_str)) found += (found.empty() ? "" : ", ") + s;
      return MakeError(ErrorCode::kInvalidArgument,
                       "dataset '%s' has no split folder '%s' (splits found: %s)",
                       root_str.c_str(), split.c_str(), found.empty() ? "none" : found.c_str());
    }
    split_dir = root / split;
    ds.split = split;
  } else if (IsDir(root / "val")) {
    split_dir = root / "val";
    ds.split = "val";
  } else if (IsDir(root / "test")) {
    split_dir = root / "test";
    ds.split = "test";
  } else if (IsDir(root / kGoodType)) {
    split_dir = root;
    ds.split = root.filename().string();
  } else {
    return MakeError(ErrorCode::kInvalidArgument,
                     "dataset '%s': no images and no val/, test/ or good/ folder in it "
                     "(expected NAME/val/good, NAME/val/<defect>, or a flat folder of images)",
                     root_str.c_str());
  }
  ds.split_dir = split_dir.string();

  // Images directly in the split folder count as good; then good/, then defects.
  FLAWLENS_ASSIGN_OR_RETURN(std::vector<std::string> loose, ListImages(split_dir.string()));
  if (!loose.empty()) FLAWLENS_RETURN_IF_ERROR(AddFolder(root, split_dir, kGoodType, split_dir, &ds));
  if (IsDir(split_dir / kGoodType)) {
    FLAWLENS_RETURN_IF_ERROR(AddFolder(root, split_dir, kGoodType, split_dir / kGoodType, &ds));
  }
  for (const std::string& d : SubDirs(split_dir)) {
    if (d == kGoodType || d == "masks" || d == "ground_truth") continue;
    FLAWLENS_RETURN_IF_ERROR(AddFolder(root, split_dir, d, split_dir / d, &ds));
  }
  if (ds.samples.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "dataset '%s' split '%s': no images (png/jpg/jpeg/bmp) in '%s' or its "
                     "subfolders",
                     root_str.c_str(), ds.split.c_str(), ds.split_dir.c_str());
  }
  return ds;
}

Result<std::vector<std::string>> ReadGroupsFile(const std::string& path, const Dataset& ds) {
  FLAWLENS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadFileBytes(path, 64ull << 20));
  std::map<std::string, size_t> by_rel;
  std::map<std::string, std::vector<size_t>> by_name;
  for (size_t i = 0; i < ds.samples.size(); ++i) {
    const fs::path p(ds.samples[i].path);
    by_rel[p.lexically_relative(ds.split_dir).generic_string()] = i;
    by_name[p.filename().string()].push_back(i);
  }
  std::vector<std::string> labels(ds.samples.size());
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos || line[0] == '#') continue;
    const size_t comma = line.rfind(',');
    if (comma == std::string::npos || comma == 0 || comma + 1 == line.size()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "groups file '%s' line %d: expected \"image,group\", got \"%s\"",
                       path.c_str(), line_no, line.c_str());
    }
    const std::string image = line.substr(0, comma), label = line.substr(comma + 1);
    size_t index;
    if (auto it = by_rel.find(image); it != by_rel.end()) {
      index = it->second;
    } else if (auto nt = by_name.find(image); nt != by_name.end() && nt->second.size() == 1) {
      index = nt->second[0];
    } else if (nt != by_name.end()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "groups file '%s' line %d: '%s' names %zu images of split '%s'; give its "
                       "path relative to '%s'",
                       path.c_str(), line_no, image.c_str(), nt->second.size(), ds.split.c_str(),
                       ds.split_dir.c_str());
    } else {
      return MakeError(ErrorCode::kInvalidArgument,
                       "groups file '%s' line %d: '%s' is not an image of split '%s' ('%s')",
                       path.c_str(), line_no, image.c_str(), ds.split.c_str(), ds.split_dir.c_str());
    }
    if (!labels[index].empty()) {
      return MakeError(ErrorCode::kInvalidArgument, "groups file '%s' line %d: '%s' is listed twice",
                       path.c_str(), line_no, image.c_str());
    }
    labels[index] = label;
  }
  return labels;
}

Result<std::vector<uint8_t>> ReadFileBytes(const std::string& path, uint64_t max_bytes) {
  if (max_bytes == 0) max_bytes = kMaxImageFileBytes;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return MakeError(ErrorCode::kInvalidArgument, "'%s' does not exist or is not a file",
                     path.c_str());
  }
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) {
    return MakeError(ErrorCode::kInvalidArgument, "cannot stat '%s': %s", path.c_str(),
                     ec.message().c_str());
  }
  if (size > max_bytes) {
    return MakeError(ErrorCode::kLimitExceeded, "'%s' is %llu bytes, more than the limit %llu",
                     path.c_str(), static_cast<unsigned long long>(size),
                     static_cast<unsigned long long>(max_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return MakeError(ErrorCode::kInvalidArgument, "cannot open '%s'", path.c_str());
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size))) {
    return MakeError(ErrorCode::kTruncated, "cannot read '%s'", path.c_str());
  }
  return bytes;
}

}  // namespace flawlens::cli
