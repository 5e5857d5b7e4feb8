// `tomobile-native validate DIR`: checksums first, then every ExecuTorch program of the folder
// through the Module API on its stored test vectors, against the eager outputs stored there,
// with runtime/validate.py's thresholds; for a split export, each variant's parts chained.
#pragma once

#include "compare.h"
#include "folder.h"
#include "manifest.h"

namespace tomobile {

struct ValidateReport {
  std::vector<Check> checks;
  int skipped = 0;  // artifacts of other formats (ONNX, Core ML): not this engine's to run
};

// Checksums of every file record first (UserError), then the runs; a folder with no ExecuTorch
// program is a UserError (no_program), not an empty pass or fail.
ValidateReport validate_dir(const fs::path& folder, bool progress);
json report_json(const ValidateReport& report);
std::string no_program(const Manifest& manifest);  // "DIR holds no ExecuTorch program (its formats: ...)"

}  // namespace tomobile
