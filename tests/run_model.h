// Test helper: load a model file written by a producer (an importer, a
// fixture) and run its network once on the usual backend chain.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/backends.h"
#include "model/model.h"

namespace flawlens {
namespace testing {

// The network's output for `input` (NHWC, the graph's input size); empty,
// with a test failure, when the file does not load or plan.
inline std::vector<float> RunModel(const std::vector<uint8_t>& bytes,
                                   const std::vector<float>& input, Shape* shape = nullptr) {
  auto model = LoadModel(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return {};
  auto ex = CreateExecutor((*model)->graph);
  EXPECT_TRUE(ex.ok()) << ex.status().ToString();
  if (!ex.ok()) return {};
  EXPECT_EQ(size_t((*ex)->input_shape().elements()), input.size());
  std::copy(input.begin(), input.end(), (*ex)->input());
  (*ex)->Run();
  if (shape) *shape = (*ex)->output_shape();
  return std::vector<float>((*ex)->output(), (*ex)->output() + (*ex)->output_shape().elements());
}

}  // namespace testing
}  // namespace flawlens
