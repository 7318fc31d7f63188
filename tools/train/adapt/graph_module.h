// A flawlens graph (src/nn/graph.h) as a LibTorch module: the same ops in
// NCHW, with every conv2d / dense weight a trainable parameter initialised
// from the model file, and the way back (the file's tensors with the trained
// weights, same graph). `flawlens adapt` fine-tunes a pretrained backbone
// through it; the page and the fitting path then run the result unchanged.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/model.h"

namespace flawlens::adapt {

// The parts of a model file the module keeps to write it back: the metadata
// JSON strings as stored, and every tensor by name.
struct ModelFileParts {
  ModelSpec spec;                     // graph, preprocess, ... and all tensors
  std::vector<std::string> weight_of; // per graph node: its weight tensor name ("" = none)
  std::vector<std::string> bias_of;   // per graph node: its bias tensor name ("" = none)
};

// Reads the safetensors header of `bytes` (already accepted by LoadModel)
// into a ModelSpec that WriteModel turns back into the same file.
Result<ModelFileParts> ReadModelFileParts(const std::vector<uint8_t>& bytes);

class GraphModuleImpl : public torch::nn::Module {
 public:
  // `model` must outlive the module only during construction (weights are
  // copied). Fails on an op the interpreter does not know.
  static Result<std::shared_ptr<GraphModuleImpl>> Create(const Model& model);

  // x: N x C x H x W (the network input after preprocessing, NCHW). Returns
  // the graph's output value, N x C' x H' x W'.
  torch::Tensor forward(const torch::Tensor& x);
  // Every value (index 0 = input, i + 1 = node i) up to `last` (default:
  // the output), for taps inside the network.
  std::vector<torch::Tensor> values(const torch::Tensor& x, int last = -1);
  // The same from values already computed: `v` holds (at least) every value
  // with id <= `first_node` (the inputs the nodes from `first_node` on may
  // read, e.g. another module's values of a shared frozen prefix); computes
  // nodes first_node .. last - 1 into it and returns it.
  std::vector<torch::Tensor> values_from(std::vector<torch::Tensor> v, int first_node, int last = -1);

  // Only the conv2d / dense nodes with index >= first_node train; the rest
  // are frozen (no gradient, and no autograd graph is built through them).
  // Returns the number of trainable parameters.
  int64_t SetTrainableFrom(int first_node);

  // Copies the current weights into `parts` (OHWI for conv2d, [out][in] for
  // dense), in place of the tensors of the same names.
  Status ExportWeights(ModelFileParts* parts) const;

  const Graph& graph() const { return graph_; }
  // Index of the node named `name`, or -1.
  int FindNode(const std::string& name) const;

 private:
  GraphModuleImpl() = default;
  Graph graph_;  // structure only (TensorRefs point to the source model, not used after Create)
  std::vector<torch::Tensor> weight_, bias_;  // per node (undefined when none)
};
TORCH_MODULE(GraphModule);

// The activation of the engine (src/nn/graph.h), in LibTorch.
torch::Tensor ApplyActivation(const torch::Tensor& x, Activation act, float alpha);

}  // namespace flawlens::adapt
