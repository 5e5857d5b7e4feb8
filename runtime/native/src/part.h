// One ExecuTorch program (.pte, with its .ptd weights) loaded through the Module API, run on
// Arrays. Construction loads the program and one method (a UserError when it cannot: a method
// the program lacks, a file the runtime refuses), "forward" or the part's method in a
// program shared by a weight group (XNNPACK packs the weights then, once per process with the
// weight cache on: enable_weight_cache); destruction frees them. A Part may be built on one
// thread and run on another.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "npz.h"

namespace executorch::extension::module { class Module; }

namespace tomobile {

class Part {
 public:
  Part(const std::filesystem::path& pte, const std::optional<std::filesystem::path>& ptd,
       const std::string& method = "forward");
  ~Part();
  Part(const Part&) = delete;
  Part& operator=(const Part&) = delete;

  // Inputs in the program's order; float32 arrays are cast to float16 where the program takes
  // half (and back), as `tomobile validate` casts for fp16 exports. Outputs copied out. A count,
  // shape or dtype the program does not take is a UserError (the folder was edited), checked
  // before the runtime sees the inputs.
  std::vector<Array> run(const std::vector<const Array*>& inputs);
  size_t num_inputs() const { return input_types_.size(); }

 private:
  std::unique_ptr<executorch::extension::module::Module> module_;
  std::vector<int> input_types_;  // executorch ScalarType per input
  std::vector<std::vector<int64_t>> input_shapes_;
  std::string method_;
  std::string what_;  // "file.pte" or "file.pte:method", for messages
};

// XNNPACK's weight cache for every method loaded from now on (backend option
// `weight_cache_enabled`): packed weights are keyed by the sha256 name the serializer gives their
// data, so methods (and programs) with the same weights share one packed copy, freed with its
// last method. Off with TOMOBILE_XNNPACK_WEIGHT_CACHE=0. Returns whether it is on.
bool enable_weight_cache();

// The ExecuTorch thread pool (XNNPACK and the optimized kernels share it): n threads; 0 keeps
// the runtime's default (one per performant core). Returns the count in use.
size_t set_threads(unsigned n);

}  // namespace tomobile
