#include "proc.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

namespace tomobile {

Memory proc_status() {
  Memory m;
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    auto value = [&line]() { return std::stoll(line.substr(line.find(':') + 1)) * 1024; };
    if (line.rfind("RssAnon:", 0) == 0) m.anon = value();
    else if (line.rfind("RssFile:", 0) == 0) m.file = value();
    else if (line.rfind("VmHWM:", 0) == 0) m.hwm = value();
  }
  return m;
}

void reset_peak() {
  std::ofstream f("/proc/self/clear_refs");
  if (f) f << "5";
}

void trim() { malloc_trim(0); }

MemoryProbe::MemoryProbe(int interval_ms) : interval_ms_(interval_ms) {
  thread_ = std::thread([this] {
    while (!stop_) {
      sample();
      std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms_));
    }
  });
}

MemoryProbe::~MemoryProbe() {
  stop_ = true;
  thread_.join();
}

void MemoryProbe::sample() {
  Memory m = proc_status();
  std::lock_guard<std::mutex> lock(mutex_);
  peak_.anon = std::max(peak_.anon, m.anon);
  peak_.file = std::max(peak_.file, m.file);
}

void MemoryProbe::start_window() {
  reset_peak();
  Memory m = proc_status();
  std::lock_guard<std::mutex> lock(mutex_);
  peak_ = {m.anon, m.file, 0};
}

Memory MemoryProbe::end_window() {
  sample();
  std::lock_guard<std::mutex> lock(mutex_);
  return {peak_.anon, peak_.file, proc_status().hwm};
}

}  // namespace tomobile
