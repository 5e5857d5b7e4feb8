// The two commands of tomobile-native, given parsed options.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "folder.h"

namespace tomobile {

struct StreamOptions {
  fs::path folder;
  std::optional<int64_t> budget;  // --memory-budget SIZE, in bytes
  bool prefetch = true;
  bool check = true;        // the chained outputs against the monolithic program, after the steps
  bool monolithic = false;  // run the variant's monolithic program instead: the reference for the bench
  int steps = 4;
  unsigned threads = 0;     // 0: the runtime's default
  std::string variant;       // empty: the split's first sequence (the unmerged denoiser where there is one)
  std::optional<fs::path> json_path;
  bool quiet = false;
};

int cmd_validate(const fs::path& folder, const std::optional<fs::path>& json_path, unsigned threads, bool quiet);
int cmd_stream(const StreamOptions& options);
// Per-call time of every ExecuTorch program of DIR on its first test-vector case: one warm-up
// call, then `runs` calls; median and minimum in ms.
int cmd_time(const fs::path& folder, int runs, unsigned threads, const std::optional<fs::path>& json_path);

}  // namespace tomobile
