// One ExecuTorch program (.pte, with its .ptd weights) loaded through the Module API, run on
// Arrays. Construction loads the program and the "forward" method (XNNPACK packs the weights
// then); destruction frees them. A Part may be built on one thread and run on another.
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
  Part(const std::filesystem::path& pte, const std::optional<std::filesystem::path>& ptd);
  ~Part();
  Part(const Part&) = delete;
  Part& operator=(const Part&) = delete;

  // Inputs in the program's order; float32 arrays are cast to float16 where the program takes
  // half (and back), as `tomobile validate` casts for fp16 exports. Outputs copied out.
  std::vector<Array> run(const std::vector<const Array*>& inputs);
  size_t num_inputs() const { return input_types_.size(); }

 private:
  std::unique_ptr<executorch::extension::module::Module> module_;
  std::vector<int> input_types_;  // executorch ScalarType per input
};

// The ExecuTorch thread pool (XNNPACK and the optimized kernels share it): n threads; 0 keeps
// the runtime's default (one per performant core). Returns the count in use.
size_t set_threads(unsigned n);

}  // namespace tomobile
