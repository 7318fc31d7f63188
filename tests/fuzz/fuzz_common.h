// Shared bits of the libFuzzer targets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace flawlens::fuzz {

// Consumes bytes from the front of the input.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  template <class T>
  T Take() {
    T v{};
    const size_t k = n_ < sizeof(T) ? n_ : sizeof(T);
    std::memcpy(&v, p_, k);
    p_ += k;
    n_ -= k;
    return v;
  }
  const uint8_t* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  const uint8_t* p_;
  size_t n_;
};

// Models accepted by the loader may still be legitimately expensive (a valid
// 8192-channel conv on 2048x2048): the harness runs inference only below this
// budget so a fuzz iteration stays in milliseconds.
inline constexpr int64_t kMaxFuzzMacs = 20'000'000;

}  // namespace flawlens::fuzz
