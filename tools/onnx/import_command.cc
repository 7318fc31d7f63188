// flawlens import-onnx: placeholder registration until the command is written.
#include <CLI/CLI.hpp>

#include "commands.h"

namespace flawlens::cli {

void AddImportOnnxCommand(CLI::App& app) { (void)app; }

}  // namespace flawlens::cli
