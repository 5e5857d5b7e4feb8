// Resident memory from /proc/self/status, VmHWM reset through clear_refs, malloc_trim: what
// runtime/memory.py does in Python, for the native engine.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>

namespace tomobile {

struct Memory {
  int64_t anon = 0;  // RssAnon bytes: heaps, packed weights
  int64_t file = 0;  // RssFile bytes: mapped files (libraries, .pte/.ptd mappings)
  int64_t hwm = 0;   // VmHWM bytes: exact peak RSS since the last reset
};

Memory proc_status();
void reset_peak();  // VmHWM := current RSS (echo 5 > /proc/self/clear_refs); no-op where refused
void trim();        // malloc_trim(0): freed heap back to the OS

// Peak RssAnon / RssFile over a window, sampled every `interval_ms` by a thread and at every
// sample() call; the window's exact RSS peak is VmHWM.
class MemoryProbe {
 public:
  explicit MemoryProbe(int interval_ms = 5);
  ~MemoryProbe();
  void sample();
  void start_window();
  Memory end_window();

 private:
  std::mutex mutex_;
  Memory peak_;
  std::atomic<bool> stop_{false};
  int interval_ms_;
  std::thread thread_;
};

}  // namespace tomobile
