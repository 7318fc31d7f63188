// Embind glue: the only file that knows about JavaScript. It binds
// flawlens::WebDetector (src/api/web_detector.h, plain C++, fuzzed natively)
// and flawlens::WebTeacher (src/api/web_teacher.h) 1:1 and turns its raw
// buffers into typed_memory_views, taken fresh on every call (memory growth
// detaches old views).
//
// Errors never unwind through wasm (no C++ exceptions, and a JS throw from
// C++ would leak the C stack): methods return "" or "code: message" and
// web/js/engine.mjs throws the FlawlensError.
#include <emscripten/bind.h>
#include <emscripten/val.h>
#include <malloc.h>

#include "api/web_detector.h"
#include "api/web_teacher.h"

namespace {

using emscripten::typed_memory_view;
using emscripten::val;
using flawlens::WebDetector;
using flawlens::WebTeacher;

val Buffer(WebDetector& d, double bytes) {
  uint8_t* p = d.buffer(bytes);
  return p == nullptr && bytes != 0 ? val::null() : val(typed_memory_view(d.bufferSize(), p));
}
val Floats(WebDetector& d, double count) {
  float* p = d.floats(count);
  return p == nullptr && count != 0 ? val::null() : val(typed_memory_view(d.floatsSize(), p));
}
val Stats(const WebDetector& d) { return val(typed_memory_view(WebDetector::kNumStats, d.stats())); }
val Map(const WebDetector& d) { return val(typed_memory_view(d.mapSize(), d.map())); }
val Output(const WebDetector& d) { return val(typed_memory_view(d.outputSize(), d.output())); }

val TeacherBuffer(WebTeacher& t, double bytes) {
  uint8_t* p = t.buffer(bytes);
  return p == nullptr && bytes != 0 ? val::null() : val(typed_memory_view(t.bufferSize(), p));
}
val TeacherModel(const WebTeacher& t) { return val(typed_memory_view(t.modelSize(), t.model())); }
// progress: a JS function called with the fraction done (or undefined / null).
std::string TeacherFit(WebTeacher& t, const std::string& options, val progress) {
  const bool call = progress.typeOf().as<std::string>() == "function";
  return t.fit(options, [&](float f) {
    if (call) progress(f);
  });
}

// Bytes in allocated heap blocks (headers included), for leak tests: the
// module links emmalloc, whose mallinfo() walks the whole heap, so this is
// not for per-frame use.
double HeapInUse() { return static_cast<double>(mallinfo().uordblks); }

}  // namespace

EMSCRIPTEN_BINDINGS(flawlens) {
  emscripten::function("heapInUse", &HeapInUse);
  emscripten::class_<WebDetector>("Detector")
      .constructor<>()
      .function("buffer", &Buffer)
      .function("releaseBytes", &WebDetector::releaseBytes)
      .function("load", &WebDetector::load)
      .function("loaded", &WebDetector::loaded)
      .function("info", &WebDetector::info)
      .function("detect", &WebDetector::detect)
      .function("detectEncoded", &WebDetector::detectEncoded)
      .function("stats", &Stats)
      .function("map", &Map)
      .function("threshold", &WebDetector::threshold)
      .function("setThreshold", &WebDetector::setThreshold)
      .function("resetThreshold", &WebDetector::resetThreshold)
      .function("falseAlarmRate", &WebDetector::falseAlarmRate)
      .class_function("describeRate", &WebDetector::describeRate)
      .function("thresholdForScores", &WebDetector::thresholdForScores)
      .function("lastError", &WebDetector::lastError)
      .function("floats", &Floats)
      .function("runNetwork", &WebDetector::runNetwork)
      .function("output", &Output);
  emscripten::class_<WebTeacher>("Teacher")
      .constructor<>()
      .function("buffer", &TeacherBuffer)
      .function("releaseBytes", &WebTeacher::releaseBytes)
      .function("begin", &WebTeacher::begin)
      .function("ready", &WebTeacher::ready)
      .function("info", &WebTeacher::info)
      .function("addFrame", &WebTeacher::addFrame)
      .function("images", &WebTeacher::images)
      .function("fit", &TeacherFit)
      .function("model", &TeacherModel)
      .function("releaseModel", &WebTeacher::releaseModel)
      .function("result", &WebTeacher::result);
}
