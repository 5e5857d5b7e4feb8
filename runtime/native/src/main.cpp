// tomobile-native: exports run on ExecuTorch's C++ runtime, without Python.
//   tomobile-native validate DIR [--json F] [--threads N] [-q]
//   tomobile-native stream DIR --memory-budget SIZE [--no-prefetch] [--steps K] [--threads N]
//                          [--variant V] [--monolithic] [--no-check] [--json F] [-q]
//   tomobile-native time DIR [--runs N] [--threads N] [--json F]
// Exit codes as `tomobile`: 0 done, 1 a check failed, 2 bad input (one line on stderr); a bug
// caught at main is one line and exit 1 (guard.h). Numbers: numbers.h (docs/input_checks.md).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <vector>

#include <executorch/runtime/platform/platform.h>

#include "commands.h"
#include "guard.h"
#include "numbers.h"
#include "part.h"

namespace {

const char* USAGE =
    "usage: tomobile-native validate DIR [--json F] [--threads N] [-q]\n"
    "       tomobile-native stream DIR --memory-budget SIZE [--no-prefetch] [--steps K] [--threads N]\n"
    "                              [--variant V] [--monolithic] [--no-check] [--json F] [-q]\n"
    "       tomobile-native time DIR [--runs N] [--threads N] [--json F]\n"
    "numbers: --threads 1..4 x this machine's cores, --steps and --runs 1..10000, SIZE 1 B..1 PB\n"
    "         (digits 0-9 and a unit: 64MB, 1.5GB, 512MiB; no exponent)\n"
    "exit: 0 done, 1 a check failed (or an internal error, a bug), 2 bad input (one line on stderr)\n";

// --steps and --runs: 1..MAX_STEPS; --threads: 1..4 x the cores, as the Python CLI bounds them.
int count(const std::string& flag, const std::string& value, int64_t high) {
  return static_cast<int>(tomobile::parse_int(value, flag, 1, high));
}

int run(const std::vector<std::string>& args) {
  using tomobile::UserError;
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    std::cout << USAGE;
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  if (command != "validate" && command != "stream" && command != "time")
    throw UserError("unknown command '" + command + "'; commands: validate, stream, time");
  tomobile::StreamOptions o;
  if (command == "time") o.steps = 20;  // --runs
  std::vector<std::string> positional;
  bool budget_flags = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw UserError(a + " needs a value");
      return args[++i];
    };
    if (a == "-q" || a == "--quiet") o.quiet = true;
    else if (a == "--json") o.json_path = value();
    else if (a == "--threads") o.threads = static_cast<unsigned>(count(a, value(), tomobile::max_threads()));
    else if (command == "stream" && a == "--memory-budget") o.budget = tomobile::parse_size(value(), a);
    else if (command == "stream" && a == "--no-prefetch") { o.prefetch = false; budget_flags = true; }
    else if (command == "stream" && a == "--steps") o.steps = count(a, value(), tomobile::MAX_STEPS);
    else if (command == "time" && a == "--runs") o.steps = count(a, value(), tomobile::MAX_STEPS);
    else if (command == "stream" && a == "--variant") o.variant = value();
    else if (command == "stream" && a == "--monolithic") o.monolithic = true;
    else if (command == "stream" && a == "--no-check") o.check = false;
    else if (a == "-h" || a == "--help") { std::cout << USAGE; return 0; }
    else if (!a.empty() && a[0] == '-') throw UserError(command + ": unknown option " + a);
    else positional.push_back(a);
  }
  if (positional.size() != 1) throw UserError(command + ": give one DIR (a folder written by `tomobile export`)");
  o.folder = positional[0];
  if (!tomobile::fs::is_directory(o.folder))
    throw UserError(o.folder.string() + " is not a folder; give the DIR that `tomobile export` wrote");
  if (command == "validate") return tomobile::cmd_validate(o.folder, o.json_path, o.threads, o.quiet);
  if (command == "time") return tomobile::cmd_time(o.folder, o.steps, o.threads, o.json_path);
  if (o.monolithic && (o.budget || budget_flags))
    throw UserError("stream: --monolithic runs the whole denoiser; --memory-budget and --no-prefetch apply to parts");
  if (!o.monolithic && !o.budget)
    throw UserError("stream: --memory-budget SIZE is required (e.g. 64MB): the bytes its loaded parts may take");
  return tomobile::cmd_stream(o);
}

// The runtime's log: errors always, its info lines only with TOMOBILE_NATIVE_LOG=1.
void emit_log(et_timestamp_t, et_pal_log_level_t level, const char* filename, const char*, size_t line,
              const char* message, size_t length) {
  static const bool verbose = std::getenv("TOMOBILE_NATIVE_LOG") != nullptr;
  if (verbose || level == kError || level == kFatal)
    std::fprintf(stderr, "%c executorch:%s:%zu] %.*s\n", static_cast<char>(level), filename, line, static_cast<int>(length), message);
}

}  // namespace

// Bad input is a UserError: one line, exit 2; anything else is a bug, one line, exit 1 (guard.h).
int main(int argc, char** argv) {
  return tomobile::guarded([&] {
    executorch::runtime::register_pal(executorch::runtime::PalImpl::create(emit_log, __FILE__));
    tomobile::enable_weight_cache();  // a weight group's methods share their packed weights
    return run(std::vector<std::string>(argv + 1, argv + argc));
  }, std::cerr);
}
