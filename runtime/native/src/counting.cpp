// libtomobile-counting.so: valgrind callgrind client requests for callers that cannot issue them
// (Python through ctypes). A process run under `valgrind --tool=callgrind --instr-atstart=no` counts
// only what runs between tomobile_count_start() and tomobile_count_stop(); outside valgrind both are
// a few no-op instructions. runtime/count.py loads it around the calls it counts.
#include <valgrind/callgrind.h>

extern "C" {

void tomobile_count_start() {
  CALLGRIND_START_INSTRUMENTATION;
  CALLGRIND_ZERO_STATS;
}

void tomobile_count_stop() {
  CALLGRIND_DUMP_STATS_AT("tomobile-calls");
  CALLGRIND_STOP_INSTRUMENTATION;
}

}  // extern "C"
