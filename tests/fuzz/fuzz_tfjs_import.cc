// The TF.js importer (tools/import/tfjs_import.cc, compiled into this target)
// on hostile model.json + weight shard pairs. Input layout:
//
//   u8 W, u8 H              network input size: 1 + value % 64 each
//   u16le n_outputs_text    then that many bytes: output node names, comma-separated
//   u32le n_json            then that many bytes: model.json text
//   rest                    the one weight shard (any path in the manifest reads it;
//                           a manifest with several paths gets it once, then errors)
//
// Every outcome must be a Status: no crash, leak, hang or sanitizer report.
// Imports that succeed have already been written and re-loaded by LoadModel.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "import/tfjs_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  flawlens::tfjs::ImportOptions options;
  options.input_w = 1 + data[0] % 64;
  options.input_h = 1 + data[1] % 64;
  size_t pos = 2;
  const size_t n_out = data[pos] | size_t{data[pos + 1]} << 8;
  pos += 2;
  if (n_out > size - pos) return 0;
  const std::string outputs(reinterpret_cast<const char*>(data + pos), n_out);
  pos += n_out;
  if (size - pos < 4) return 0;
  const size_t n_json = data[pos] | size_t{data[pos + 1]} << 8 | size_t{data[pos + 2]} << 16 |
                        size_t{data[pos + 3]} << 24;
  pos += 4;
  if (n_json > size - pos) return 0;
  const std::string json(reinterpret_cast<const char*>(data + pos), n_json);
  pos += n_json;
  const std::vector<uint8_t> shard(data + pos, data + size);
  size_t start = 0;
  while (start <= outputs.size()) {
    size_t comma = outputs.find(',', start);
    if (comma == std::string::npos) comma = outputs.size();
    if (comma > start) options.outputs.push_back(outputs.substr(start, comma - start));
    start = comma + 1;
  }
  int reads = 0;
  flawlens::tfjs::ShardReader reader =
      [&](const std::string& path) -> flawlens::Result<std::vector<uint8_t>> {
    if (reads++ > 0) {
      return flawlens::Status(flawlens::ErrorCode::kInvalidArgument,
                              "shard '" + path + "' not found");
    }
    return shard;
  };
  auto result = flawlens::tfjs::ImportTfjs(json, reader, options);
  if (result.ok() && result->bytes.empty()) __builtin_trap();  // success means a written model
  return 0;
}
