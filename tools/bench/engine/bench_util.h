// Shared pieces of engine_bench: the clock (wall or CPU), statistics, the
// deterministic inputs and the RESULT line. Builds natively and with em++.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace flawlens::bench {

// --cpu: the thread CPU clock natively, node's process.cpuUsage() in wasm:
// steadier than wall clock on a loaded machine (ignores time spent preempted).
void UseCpuClock(bool cpu);
bool CpuClock();
double NowMs();

double Median(std::vector<double> v);  // mean of the two middle values for even sizes
double Percentile(std::vector<double> v, double p);  // nearest rank
double Min(const std::vector<double>& v);
double Max(const std::vector<double>& v);

// Times `runs` passes of steps 0..n-1 (each step timed, and the pass), after
// `warmup` passes and, unless `exact_warmup`, at least 1 s of warm-up (as the
// shared anchor benchmark does).
struct StepTimes {
  std::vector<std::vector<double>> per_step;
  std::vector<double> totals;
};
StepTimes TimeSteps(size_t n, int runs, int warmup, bool exact_warmup,
                    const std::function<void(size_t)>& step);

// Deterministic numbers in [-1, 1) (one global LCG: runs repeat exactly).
float Rand();

// A deterministic "natural-looking" frame: smooth shading, edges, noise.
std::vector<uint8_t> MakeFrame(int w, int h, int bytes_per_pixel);

bool ReadFile(const std::string& path, std::vector<uint8_t>* out);

// The line the shared anchor benchmark's run.sh collects from an engine (the
// fields of its common.report()).
void PrintResult(const std::string& engine, const std::string& net, int64_t flops,
                 const std::vector<double>& totals);

// A list given as "a,b,c".
std::vector<std::string> SplitList(const std::string& s);

}  // namespace flawlens::bench
