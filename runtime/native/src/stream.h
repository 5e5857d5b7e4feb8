// CI-DL (On-device Sora's concurrent inference with dynamic loading) in C++: the same residency
// plan as runtime/streaming.py's BlockStreamer. Parts stay resident while the budget allows
// (plan_pinned, once per variant); the others are loaded for their turn and released after it
// (then malloc_trim). With prefetch, a loader thread loads the next part that is not resident
// while the current one runs; no interpreter lock stands between them here. The sum of the sizes
// of the parts loaded or loading never exceeds the budget.
#pragma once

#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "part.h"
#include "proc.h"
#include "split.h"

namespace tomobile {

using Env = std::map<std::string, Array>;  // named arrays: the denoiser's inputs plus every part's outputs

struct CallStats {  // one denoiser call (one sampling step)
  std::string variant;
  int parts_run = 0, parts_loaded = 0;
  int prefetched = 0;    // loads done on the loader thread
  double load_s = 0;     // time spent loading parts, on either thread
  double waited_s = 0;   // time the compute thread waited for a load or loaded itself
  double hidden_s = 0;   // background load time the compute thread did not wait for
  double run_s = 0;      // time in the parts' execute
  double latency_s = 0;
  int64_t resident_max = 0;  // highest sum of loaded + loading part sizes
  Memory peak;
};

struct Loaded {
  std::unique_ptr<Part> part;
  double seconds = 0, start = 0, end = 0;  // on the steady clock, seconds
};

// One background thread that loads one part at a time.
class Loader {
 public:
  Loader();
  ~Loader();
  std::future<Loaded> submit(const PartSpec& spec);

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::function<void()> job_;
  bool stop_ = false;
  std::thread thread_;
};

class Streamer {
 public:
  Streamer(const Split& split, int64_t budget, bool prefetch, MemoryProbe* probe);
  ~Streamer();
  // Runs `variant`'s parts in order on the named inputs; returns the last part's first output
  // (as float32).
  Array operator()(const std::string& variant, const Env& inputs);
  const std::vector<CallStats>& stats() const { return stats_; }
  const std::set<std::string>& pinned(const std::string& variant);

 private:
  Part& acquire(const std::string& name, CallStats& stats);
  void prefetch(const std::vector<std::string>& seq, size_t i, CallStats& stats);
  void release(const std::string& name, CallStats& stats);
  int64_t resident_bytes() const;

  const Split& split_;
  int64_t budget_;
  MemoryProbe* probe_;
  std::unique_ptr<Loader> loader_;
  std::map<std::string, std::unique_ptr<Part>> loaded_;
  std::map<std::string, std::future<Loaded>> loading_;
  std::map<std::string, std::set<std::string>> pinned_;
  std::vector<CallStats> stats_;
};

double now_s();  // steady clock, seconds
Loaded load_timed(const PartSpec& spec);
Array as_float32(const Array& a);

}  // namespace tomobile
