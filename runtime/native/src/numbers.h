// The numbers a user types on tomobile-native's command line, by the rules of the Python side
// (graphs/numbers.py, docs/input_checks.md): ASCII digits only, ASCII whitespace around them
// ignored, every value bounded, sizes exact (no float on the way). tests/number_cases.json holds
// the cases both parsers are tested on.
#pragma once

#include <cstdint>
#include <string>

namespace tomobile {

constexpr int64_t MAX_BYTES = 1000000000000000;  // 1 PB: above any device's memory
constexpr int64_t MAX_STEPS = 10000;              // steps and timed runs: a bound on the work one typo starts

int64_t max_threads();  // 4 x this machine's online cores (the Python CLI's MAX_THREADS)

// A plain decimal integer in [low, high] (a leading '-' only says it is negative; '-0' is refused).
int64_t parse_int(const std::string& text, const std::string& what, int64_t low, int64_t high);

// "64MB" -> 64000000: a decimal number without exponent, one optional space, then a unit from
// B, KB, MB, GB, TB, PB (powers of 1000) or KiB, MiB, GiB, TiB (of 1024), any case; a bare number
// is bytes. The byte count is floor(number x unit), computed exactly, from 1 B to 1 PB.
int64_t parse_size(const std::string& text, const std::string& what);

}  // namespace tomobile
