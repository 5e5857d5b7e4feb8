// A `--split blocks` export's parts (manifest.json's `split` entry) for ExecuTorch, the budget
// arithmetic of runtime/streaming.py, and chaining parts by the names of their inputs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "manifest.h"
#include "npz.h"

namespace tomobile {

struct PartSpec {
  std::string name;
  fs::path pte;
  std::optional<fs::path> ptd;  // weights written outside the program
  int64_t size = 0;              // bytes on disk, program + weights: what the budget counts
  std::vector<std::string> inputs, outputs;
  bool fp16 = false;             // takes and returns float16
  std::string method = "forward";  // its method in a program shared by a weight group (manifest `method`)
};

struct Split {
  fs::path folder;
  std::map<std::string, PartSpec> parts;
  std::vector<std::pair<std::string, std::vector<std::string>>> sequences;  // variant -> parts in run order

  const std::vector<std::string>& sequence(const std::string& variant) const;  // UserError for an unknown one
  int64_t sequence_bytes(const std::string& variant) const;
  const PartSpec& largest() const;
};

// The split parts of an export for ExecuTorch; with `verify`, every part file present and equal
// to its sha256 (a file swapped for another part's is named as such). A folder without a split,
// or whose split has no ExecuTorch files, is a UserError that says how to export one.
Split open_split(const Manifest& manifest, bool verify);

// Parts (in run order) that stay resident: taken in order while the pinned bytes plus room for the
// streamed ones (the largest one, two with prefetch) fit the budget; all when the total fits.
std::set<std::string> plan_pinned(const std::vector<std::pair<std::string, int64_t>>& sizes, int64_t budget,
                                  bool prefetch);

std::string mb(double bytes);  // "184.3 MB"

// The monolithic artifact (ExecuTorch) for a part name of the manifest: (program, weights, fp16), or
// none where the manifest lists none: a split Wan transformer is exported as parts only, its
// monolithic reference the eager model (its test vectors).
std::optional<PartSpec> find_artifact(const Manifest& manifest, const std::string& part);
PartSpec artifact_spec(const Manifest& manifest, const Artifact& artifact);  // this artifact's program

// Test-vector cases of a part: case -> (inputs in order, outputs by name), from test_vectors/PART.npz;
// every case gives as many inputs as the manifest lists and every output it names (UserError).
struct Case {
  std::string name;
  std::vector<Array> inputs;
  std::map<std::string, Array> outputs;
};
std::vector<Case> read_cases(const Manifest& manifest, const std::string& part);

}  // namespace tomobile
