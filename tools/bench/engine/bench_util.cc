#include "bench_util.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>

#if defined(__EMSCRIPTEN__)
#include <emscripten.h>
#endif

namespace flawlens::bench {
namespace {
bool g_cpu = false;
uint32_t g_seed = 12345;
}  // namespace

void UseCpuClock(bool cpu) { g_cpu = cpu; }
bool CpuClock() { return g_cpu; }

double NowMs() {
  if (g_cpu) {
#if defined(__EMSCRIPTEN__)
    // node: process CPU time (user + system), microsecond resolution.
    return EM_ASM_DOUBLE({
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    });
#elif defined(CLOCK_THREAD_CPUTIME_ID)
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
#endif
  }
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(std::lround(p * (v.size() - 1)))];
}

double Min(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::min_element(v.begin(), v.end());
}
double Max(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

StepTimes TimeSteps(size_t n, int runs, int warmup, bool exact_warmup,
                    const std::function<void(size_t)>& step) {
  StepTimes out;
  out.per_step.resize(n);
  const double warm_start = NowMs();
  for (int it = 0; it < warmup || (!exact_warmup && NowMs() - warm_start < 1000.0); ++it) {
    for (size_t i = 0; i < n; ++i) step(i);
  }
  for (int it = 0; it < runs; ++it) {
    const double t0 = NowMs();
    double prev = t0;
    for (size_t i = 0; i < n; ++i) {
      step(i);
      const double t = NowMs();
      out.per_step[i].push_back(t - prev);
      prev = t;
    }
    out.totals.push_back(prev - t0);
  }
  return out;
}

float Rand() {
  g_seed = g_seed * 1664525u + 1013904223u;
  return static_cast<float>(g_seed >> 8) / 8388608.0f - 1.0f;
}

std::vector<uint8_t> MakeFrame(int w, int h, int bpp) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * bpp);
  uint32_t seed = 777;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      seed = seed * 1664525u + 1013904223u;
      const int noise = static_cast<int>(seed >> 28) - 8;
      const double fx = double(x) / w, fy = double(y) / h;
      const double base = 90 + 60 * fx + 40 * std::sin(fy * 9) + ((x / 37 + y / 29) % 2 ? 30 : 0);
      for (int c = 0; c < bpp; ++c) {
        const int v = c == 3 ? 255 : static_cast<int>(base + 15 * c * fy) + noise;
        px[(static_cast<size_t>(y) * w + x) * bpp + c] = static_cast<uint8_t>(std::clamp(v, 0, 255));
      }
    }
  }
  return px;
}

bool ReadFile(const std::string& path, std::vector<uint8_t>* out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  std::fseek(f, 0, SEEK_END);
  const long n = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  out->resize(n > 0 ? static_cast<size_t>(n) : 0);
  const bool ok = n > 0 && std::fread(out->data(), 1, out->size(), f) == out->size();
  std::fclose(f);
  return ok;
}

void PrintResult(const std::string& engine, const std::string& net, int64_t flops,
                 const std::vector<double>& totals) {
  const double med = Median(totals);
  std::printf("RESULT {\"engine\":\"%s\",\"net\":\"%s\",\"flops\":%lld,\"n\":%zu,\"median\":%.4f,"
              "\"p10\":%.4f,\"p90\":%.4f,\"min\":%.4f,\"max\":%.4f,\"gflops\":%.3f,\"threads\":1}\n",
              engine.c_str(), net.c_str(), static_cast<long long>(flops), totals.size(), med,
              Percentile(totals, 0.1), Percentile(totals, 0.9), Min(totals), Max(totals),
              med > 0 ? flops / (med * 1e6) : 0.0);
}

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    const size_t end = comma == std::string::npos ? s.size() : comma;
    if (end > start) out.push_back(s.substr(start, end - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace flawlens::bench
