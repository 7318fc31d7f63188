// The one reader of the safetensors framing (an 8-byte little-endian header
// length, a JSON header, the tensor data): the model loader reads files
// through it, and so does any code that inspects or rewrites a file's header
// (tests, tools, the teacher reading a backbone's metadata). Nothing here
// trusts the bytes: every check LoadModel makes on the framing happens here,
// with the same error codes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "core/status.h"
#include "model/json_value.h"

namespace flawlens {

struct SafetensorsHeader {
  uint64_t length = 0;     // header bytes (its padding included)
  size_t data_offset = 0;  // 8 + length: where the tensor data starts
  JsonValue json;          // the header object: tensor entries and "__metadata__"
  bool has_metadata = false;
  std::map<std::string, std::string> metadata;  // "__metadata__", every value a string
};

// Errors: kInvalidArgument (no bytes), kLimitExceeded (file or header above
// core/limits.h), kTruncated (shorter than 8 bytes or than the header it
// announces), kBadMagic (no '{' at byte 8, a header that is not an object),
// kBadHeader (a header length below 2, malformed JSON, a key twice,
// "__metadata__" not an object of strings).
Result<SafetensorsHeader> ReadSafetensorsHeader(const uint8_t* bytes, size_t size);

// A flawlens model's metadata: present, format "flawlens" (else kBadMagic),
// format_version kFormatVersion (else kBadVersion).
Status CheckFlawlensMetadata(const SafetensorsHeader& header);

}  // namespace flawlens
