#include "model/safetensors.h"

#include <utility>

#include "core/limits.h"
#include "model/model.h"

namespace flawlens {

namespace {
// Names in messages: long ones cut (a hostile file chooses them).
std::string Q(const std::string& s) { return s.size() <= 80 ? s : s.substr(0, 77) + "..."; }
}  // namespace

Result<SafetensorsHeader> ReadSafetensorsHeader(const uint8_t* bytes, size_t size) {
  if (bytes == nullptr || size == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "empty model buffer");
  }
  if (static_cast<uint64_t>(size) > kMaxModelBytes) {
    return MakeError(ErrorCode::kLimitExceeded, "model file is %llu bytes (limit %llu)",
                     static_cast<unsigned long long>(size),
                     static_cast<unsigned long long>(kMaxModelBytes));
  }
  if (size < 8) {
    return MakeError(ErrorCode::kTruncated,
                     "file is truncated: %zu bytes, a safetensors file starts with an 8-byte "
                     "header length",
                     size);
  }
  const uint64_t header_len = ReadHeaderLength(bytes);
  if (size > 8 && bytes[8] != '{') {
    return MakeError(ErrorCode::kBadMagic,
                     "not a safetensors file: the JSON header must start with '{' at byte 8");
  }
  if (header_len > kMaxHeaderBytes) {
    return MakeError(ErrorCode::kLimitExceeded, "header length %llu exceeds the limit %llu",
                     static_cast<unsigned long long>(header_len),
                     static_cast<unsigned long long>(kMaxHeaderBytes));
  }
  if (header_len < 2) {
    return MakeError(ErrorCode::kBadHeader, "header length %llu is too small for a JSON object",
                     static_cast<unsigned long long>(header_len));
  }
  if (header_len > size - 8) {
    return MakeError(ErrorCode::kTruncated,
                     "file is truncated: header announces %llu bytes, only %zu follow",
                     static_cast<unsigned long long>(header_len), size - 8);
  }
  SafetensorsHeader out;
  out.length = header_len;
  out.data_offset = static_cast<size_t>(8 + header_len);
  const char* header_text = reinterpret_cast<const char*>(bytes + 8);
  std::string duplicate;
  FLAWLENS_RETURN_IF_ERROR(
      ParseJson(header_text, static_cast<size_t>(header_len), "header", &out.json, &duplicate));
  if (!out.json.is_object()) return MakeError(ErrorCode::kBadMagic, "header is not a JSON object");
  if (!duplicate.empty()) {
    return MakeError(ErrorCode::kBadHeader, "header: tensor '%s' is declared twice",
                     Q(duplicate).c_str());
  }
  const JsonValue* meta = out.json.Find("__metadata__");
  if (meta == nullptr) return out;
  if (!meta->is_object()) {
    return MakeError(ErrorCode::kBadHeader, "__metadata__ must be an object of strings");
  }
  out.has_metadata = true;
  for (size_t i = 0; i < meta->size(); ++i) {
    const std::string& key = meta->keys()[i];
    if (!(*meta)[i].is_string()) {
      return MakeError(ErrorCode::kBadHeader, "__metadata__.%s must be a string", Q(key).c_str());
    }
    out.metadata[key] = (*meta)[i].str();
  }
  return out;
}

Status CheckFlawlensMetadata(const SafetensorsHeader& header) {
  // A plain safetensors file (no flawlens metadata) is "not a flawlens
  // model", whatever its tensors look like.
  if (!header.has_metadata) {
    return MakeError(ErrorCode::kBadMagic,
                     "not a flawlens model: safetensors header has no __metadata__");
  }
  const auto& meta = header.metadata;
  auto format = meta.find("format");
  if (format == meta.end() || format->second != "flawlens") {
    return MakeError(ErrorCode::kBadMagic, "not a flawlens model: __metadata__.format is %s",
                     format == meta.end() ? "missing"
                                          : ("'" + Q(format->second) + "'").c_str());
  }
  auto version = meta.find("format_version");
  bool known = false;
  for (int v = kMinFormatVersion; v <= kFormatVersion; ++v) {
    known = known || (version != meta.end() && version->second == std::to_string(v));
  }
  if (!known) {
    return MakeError(ErrorCode::kBadVersion,
                     "format_version %s is not supported (this build reads '%d' to '%d')",
                     version == meta.end() ? "missing" : ("'" + Q(version->second) + "'").c_str(),
                     kMinFormatVersion, kFormatVersion);
  }
  return Status::Ok();
}

}  // namespace flawlens
