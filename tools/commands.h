// Subcommands of the flawlens CLI. Each Add*Command registers its CLI11
// subcommand (options + callback) on `app`; main.cc only wires them up.
#pragma once

namespace CLI {
class App;
}

namespace flawlens::cli {

void AddTrainCommand(CLI::App& app);  // tools/train/train_command.cc
void AddEvalCommand(CLI::App& app);   // tools/inspect/eval.cc
void AddScoreCommand(CLI::App& app);  // tools/inspect/score.cc
void AddCalibrateCommand(CLI::App& app);  // tools/inspect/calibrate.cc
void AddInfoCommand(CLI::App& app);   // tools/inspect/info.cc
void AddSynthCommand(CLI::App& app);  // tools/synth/
void AddBenchCommand(CLI::App& app);  // tools/inspect/bench.cc
void AddImportTfjsCommand(CLI::App& app);  // tools/import/
void AddImportOnnxCommand(CLI::App& app);  // tools/onnx/import_command.cc
void AddExportOnnxCommand(CLI::App& app);  // tools/onnx/export_command.cc

// Exit code a subcommand callback sets (CLI11 callbacks return void).
int& ExitCode();

}  // namespace flawlens::cli
