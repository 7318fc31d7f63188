// The one translation unit that compiles stb_image's implementation.
//
// Configuration (keep decode.cc's checks in sync):
//   - PNG, JPEG and BMP only. TGA is off on purpose: it has no magic number,
//     so stb would "decode" random bytes as a TGA. GIF/PSD/HDR/PIC/PNM off.
//   - No stdio: images come in as bytes (wasm has no filesystem).
//   - STBI_MAX_DIMENSIONS stays at stb's 2^24 on purpose: DecodeImage checks
//     the header's size against kMaxImageSide / kMaxImagePixels itself, and
//     a lower stb limit would make stbi_info fail with "unknown image type"
//     instead of reporting the size (the user would get kBadImage, not
//     kLimitExceeded). Sizes above 2^24 are caught by DecodeImage's own
//     PNG/BMP header reads.
//   - STBI_ASSERT is a no-op: stb's asserts check internal invariants and
//     some are reachable from hostile input; an abort is never acceptable,
//     and the release build (NDEBUG) behaves the same way.
//   - Failure strings stay on: they go into the kBadImage message.
#define STBI_NO_STDIO
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STBI_MAX_DIMENSIONS (1 << 24)
#define STBI_ASSERT(x) ((void)0)
// Every stb allocation goes through a per-thread cap (stb_alloc.h).
#define STBI_MALLOC(sz) ::flawlens::image_internal::StbMalloc(sz)
#define STBI_REALLOC(p, sz) ::flawlens::image_internal::StbRealloc(p, sz)
#define STBI_FREE(p) ::flawlens::image_internal::StbFree(p)
#define STB_IMAGE_IMPLEMENTATION

#include <cstdint>
#include <cstdlib>

#include "core/limits.h"
#include "image/stb_alloc.h"

namespace flawlens {
namespace image_internal {
namespace {
thread_local size_t g_cap = SIZE_MAX;
}  // namespace

ScopedStbAllocCap::ScopedStbAllocCap(size_t bytes) : previous_(g_cap) { g_cap = bytes; }
ScopedStbAllocCap::~ScopedStbAllocCap() { g_cap = previous_; }

void* StbMalloc(size_t bytes) { return bytes > g_cap ? nullptr : std::malloc(bytes); }
void* StbRealloc(void* p, size_t bytes) {
  return bytes > g_cap ? nullptr : std::realloc(p, bytes);  // p stays valid on failure
}
void StbFree(void* p) { std::free(p); }

}  // namespace image_internal
}  // namespace flawlens

static_assert(STBI_MAX_DIMENSIONS >= flawlens::kMaxImageSide,
              "stb must be able to decode every image DecodeImage accepts");

// UBSan (FLAWLENS_SANITIZE / fuzz builds, -fno-sanitize-recover) would abort
// on stb's benign undefined behaviour that valid files reach: memcpy(NULL, p,
// 0) for a zero-length PNG IDAT, left shifts of negative values and
// wrapping int arithmetic in the JPEG IDCT on hostile coefficients. Those
// three checks are switched off for stb's functions (clang: an attribute
// pragma; GCC, which has none: stb's functions are all `static`, so the
// keyword gets a temporary meaning around the include); bounds and every
// other check stay on. The headers stb includes are included first,
// so their include guards keep them out of the macro.
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <emmintrin.h>
#endif

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wattributes"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("shift", "nonnull-attribute", "signed-integer-overflow"))), apply_to = function)
#include <stb/stb_image.h>
#pragma clang attribute pop
#else  // GCC has no attribute pragma; its attributes are ignored on variables
#define static static __attribute__((no_sanitize("shift", "nonnull-attribute", "signed-integer-overflow")))
#include <stb/stb_image.h>
#undef static
#endif

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
