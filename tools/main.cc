// flawlens: train an anomaly detector on good images, evaluate it, score
// images with the inference core, inspect model files.
#include <CLI/CLI.hpp>

#include "commands.h"

namespace flawlens::cli {
int& ExitCode() {
  static int code = 0;
  return code;
}
}  // namespace flawlens::cli

int main(int argc, char** argv) {
  CLI::App app{"flawlens: image anomaly detection trained on good images only"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "flawlens 0.1.0");
  flawlens::cli::AddTrainCommand(app);
  flawlens::cli::AddEvalCommand(app);
  flawlens::cli::AddScoreCommand(app);
  flawlens::cli::AddCalibrateCommand(app);
  flawlens::cli::AddInfoCommand(app);
  flawlens::cli::AddSynthCommand(app);
  flawlens::cli::AddBenchCommand(app);
  flawlens::cli::AddImportTfjsCommand(app);
#if FLAWLENS_ONNX
  flawlens::cli::AddImportOnnxCommand(app);
  flawlens::cli::AddExportOnnxCommand(app);
#endif
  CLI11_PARSE(app, argc, argv);
  return flawlens::cli::ExitCode();
}
