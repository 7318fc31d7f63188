// Status and Result<T> are part of the public API (flawlens/status.h); src/
// keeps including them by this path so internal code has one include style
// ("core/...", "model/...", "nn/...").
#pragma once

#include "flawlens/status.h"
