// Exception-free JSON helpers for the model reader/writer (nlohmann json with
// JSON_NOEXCEPTION: a wrong get<>() or at() would abort, so every access goes
// through these checked helpers), plus the JSON (de)serialisers of the
// model's config sections. Internal to src/model/ and its tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "image/preprocess.h"
#include "model/model.h"

namespace flawlens {

using Json = nlohmann::json;

// Deepest nesting of arrays/objects accepted in any JSON document of a model
// file (the parser is iterative, but dump/copy/destroy recurse).
inline constexpr int kMaxJsonDepth = 64;

// Parses `size` bytes of JSON. Malformed JSON or nesting deeper than
// kMaxJsonDepth -> kBadHeader naming `what`. If `duplicate_top_key` is not
// null, it receives the first key that occurs twice in the top-level object
// (nlohmann keeps only the last one silently); empty if none.
Status ParseJson(const char* data, size_t size, const std::string& what, Json* out,
                 std::string* duplicate_top_key = nullptr);

// Serialise without ever aborting (invalid UTF-8 is replaced by U+FFFD).
std::string DumpJson(const Json& j);

// Member of an object, or nullptr (also when `obj` is not an object).
const Json* FindMember(const Json& obj, const char* key);

// Typed accessors. Absent key -> OK and *out unchanged (the caller's default).
// Present with the wrong type / out of range -> `code` with a message
// "<ctx>: '<key>' must be ...".
Status GetInt(const Json& obj, const char* key, int64_t lo, int64_t hi, ErrorCode code,
              const std::string& ctx, int* out);
// Integer or [a, b] of integers, each in [lo, hi]; a scalar sets both.
Status GetIntPair(const Json& obj, const char* key, int64_t lo, int64_t hi, ErrorCode code,
                  const std::string& ctx, int* a, int* b);
// Finite number representable as float, in [lo, hi].
Status GetFloat(const Json& obj, const char* key, double lo, double hi, ErrorCode code,
                const std::string& ctx, float* out);
Status GetBool(const Json& obj, const char* key, ErrorCode code, const std::string& ctx,
               bool* out);
Status GetString(const Json& obj, const char* key, ErrorCode code, const std::string& ctx,
                 std::string* out);

// Integer conversion of one JSON value (no key). False if not an integer in
// [lo, hi].
bool JsonToInt64(const Json& v, int64_t lo, int64_t hi, int64_t* out);

// ---- Config sections (see model/FORMAT.md) ----------------------------------
// Parsers of the metadata sections. They check types and value ranges of the
// section on its own; cross-checks against the graph and tensors are done by
// LoadModel. Errors are kBadHeader.
Status ParsePreprocessJson(const Json& j, PreprocessConfig* out);
Status ParseCalibrationJson(const Json& j, Calibration* out);

// Postprocess without the tensor references: names of cell_mean / cell_std
// ("" when absent) are returned for LoadModel to resolve.
Status ParsePostprocessJson(const Json& j, PostprocessConfig* out, std::string* cell_mean,
                            std::string* cell_std);
std::string PostprocessToJson(const PostprocessConfig& config, const std::string& cell_mean = "",
                              const std::string& cell_std = "");

const char* ScoreReduceName(ScoreReduce reduce);  // "max", "topk_mean", "mean"
const char* NormModeName(NormMode mode);          // "mean_std", "local_contrast"

}  // namespace flawlens
