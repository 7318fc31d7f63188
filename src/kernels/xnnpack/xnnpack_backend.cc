// XNNPACK backend (work in progress: stub until the operators land).
#include "nn/backend.h"

namespace flawlens {

bool HaveXnnpack() { return false; }
std::unique_ptr<Backend> MakeXnnpackBackend(int threads) { return nullptr; }

}  // namespace flawlens
