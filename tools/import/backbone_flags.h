// The command-line options import-tfjs and import-onnx share (--outputs,
// --out, --input, --name, --licence, --origin, --scale, --mean, --std), their
// parsing into import::BackboneOptions and the writing of the result.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "import/emit.h"

namespace flawlens::cli {

struct BackboneFlags {
  std::string model, outputs, out, input, name, licence, origin, mean = "0", std = "1";
  float scale = 1.0f;
};

// What differs between the two commands' help.
struct BackboneFlagHelp {
  const char* outputs;  // what the names are
  const char* input;    // how the input size is chosen
  const char* origin;   // an example
  bool required;        // --outputs and --out are required by the parser
};

void AddBackboneFlags(CLI::App* cmd, BackboneFlags* flags, const BackboneFlagHelp& help);

// Fills `options` from the flags; 0, or 2 after printing the error
// (`alternative`: what the command does instead without --outputs / --out).
int ToBackboneOptions(const char* command, const BackboneFlags& flags,
                      import::BackboneOptions* options, const char* alternative = nullptr);

// Writes the backbone to flags.out and prints "<out>: <what>N engine nodes,
// ..." and one line per feature layer; the exit code.
int WriteBackbone(const char* command, const std::string& out, const import::Backbone& result,
                  const std::string& what);

}  // namespace flawlens::cli
