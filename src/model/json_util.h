// Checked JSON accessors for the model reader/writer (typed getters with
// range checks and messages naming the key), plus the JSON (de)serialisers of
// the model's config sections. The JSON values themselves are JsonValue
// (model/json_value.h). Internal to src/model/, src/api/ and their tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"
#include "image/preprocess.h"
#include "model/json_value.h"
#include "model/model.h"

namespace flawlens {

// ParseJson() (model/json_value.h): nesting deeper than kMaxJsonDepth (64) or
// malformed text -> kBadHeader naming `what`.

// Serialise without ever aborting (invalid UTF-8 is replaced by U+FFFD).
inline std::string DumpJson(const JsonValue& j) { return j.Dump(); }

// Member of an object, or nullptr (also when `obj` is not an object).
const JsonValue* FindMember(const JsonValue& obj, const char* key);

// Typed accessors. Absent key -> OK and *out unchanged (the caller's default).
// Present with the wrong type / out of range -> `code` with a message
// "<ctx>: '<key>' must be ...".
Status GetInt(const JsonValue& obj, const char* key, int64_t lo, int64_t hi, ErrorCode code,
              const std::string& ctx, int* out);
// Integer or [a, b] of integers, each in [lo, hi]; a scalar sets both.
Status GetIntPair(const JsonValue& obj, const char* key, int64_t lo, int64_t hi, ErrorCode code,
                  const std::string& ctx, int* a, int* b);
// Finite number representable as float, in [lo, hi].
Status GetFloat(const JsonValue& obj, const char* key, double lo, double hi, ErrorCode code,
                const std::string& ctx, float* out);
Status GetBool(const JsonValue& obj, const char* key, ErrorCode code, const std::string& ctx,
               bool* out);
Status GetString(const JsonValue& obj, const char* key, ErrorCode code, const std::string& ctx,
                 std::string* out);

// Integer conversion of one JSON value (no key). False if not an integer in
// [lo, hi].
bool JsonToInt64(const JsonValue& v, int64_t lo, int64_t hi, int64_t* out);

// ---- Config sections (see model/FORMAT.md) ----------------------------------
// Parsers of the metadata sections. They check types and value ranges of the
// section on its own; cross-checks against the graph and tensors are done by
// LoadModel. Errors are kBadHeader.
Status ParsePreprocessJson(const JsonValue& j, PreprocessConfig* out);
Status ParseCalibrationJson(const JsonValue& j, Calibration* out);

// Postprocess without the tensor references: the names of cell_mean,
// cell_std, edge_mean, edge_std ("" when absent) are returned for LoadModel
// to resolve.
Status ParsePostprocessJson(const JsonValue& j, PostprocessConfig* out, std::string names[4]);
std::string PostprocessToJson(const PostprocessConfig& config, const std::string& cell_mean = "",
                              const std::string& cell_std = "");

const char* ScoreReduceName(ScoreReduce reduce);  // "max", "topk_mean", "mean"
const char* NormModeName(NormMode mode);          // "mean_std", "local_contrast"

}  // namespace flawlens
