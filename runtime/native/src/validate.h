// `tomobile-native validate DIR`: checksums first, then every ExecuTorch program of the folder
// through the Module API on its stored test vectors, against the eager outputs stored there,
// with runtime/validate.py's thresholds; for a split export, each variant's parts chained.
#pragma once

#include "compare.h"
#include "folder.h"

namespace tomobile {

struct ValidateReport {
  std::vector<Check> checks;
  int skipped = 0;  // artifacts of other formats (ONNX, Core ML): not this engine's to run
};

ValidateReport validate_dir(const fs::path& folder, bool progress);
json report_json(const ValidateReport& report);

}  // namespace tomobile
