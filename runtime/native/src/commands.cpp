#include "commands.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "manifest.h"
#include "part.h"
#include "stream.h"
#include "validate.h"

#ifdef TOMOBILE_HAVE_CALLGRIND
#include <valgrind/callgrind.h>
// Under `valgrind --tool=callgrind --instr-atstart=no`, `time` counts its timed runs only (not the
// load or the warm-up); outside valgrind these are no-ops.
#define COUNT_START() do { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; } while (0)
#define COUNT_STOP() do { CALLGRIND_DUMP_STATS_AT("tomobile-calls"); CALLGRIND_STOP_INSTRUMENTATION; } while (0)
#else
#define COUNT_START() do { } while (0)
#define COUNT_STOP() do { } while (0)
#endif

namespace tomobile {
namespace {

void write_json(const std::optional<fs::path>& path, const json& data) {
  if (!path) return;
  std::ofstream f(*path);
  if (!f) throw UserError("cannot write " + path->string());
  f << data.dump(2) << "\n";
}

void check_json_path(const std::optional<fs::path>& path) {
  if (path && !path->parent_path().empty() && !fs::is_directory(path->parent_path()))
    throw UserError("--json " + path->string() + ": no folder " + path->parent_path().string());
}

json step_json(size_t i, const CallStats& s) {
  return {{"step", i}, {"variant", s.variant}, {"parts_run", s.parts_run}, {"parts_loaded", s.parts_loaded},
          {"parts_prefetched", s.prefetched},
          {"load_s", s.load_s}, {"waited_s", s.waited_s}, {"hidden_s", s.hidden_s}, {"run_s", s.run_s},
          {"latency_s", s.latency_s}, {"resident_max_bytes", s.resident_max}, {"peak_rss_anon_bytes", s.peak.anon},
          {"peak_rss_file_bytes", s.peak.file}, {"peak_rss_bytes", s.peak.hwm}};
}

std::string steps_table(const std::vector<CallStats>& stats) {
  std::string out = "step  parts  loaded  load s  waited s  hidden s  resident MB  peak RssAnon MB  peak RssFile MB  peak RSS MB  latency s\n";
  char line[256];
  for (size_t i = 0; i < stats.size(); ++i) {
    const auto& s = stats[i];
    std::snprintf(line, sizeof line, "%-4zu  %-5d  %-6d  %-6.3f  %-8.3f  %-8.3f  %-11.1f  %-15.1f  %-15.1f  %-11.1f  %.3f\n", i,
                  s.parts_run, s.parts_loaded, s.load_s, s.waited_s, s.hidden_s, s.resident_max / 1e6, s.peak.anon / 1e6,
                  s.peak.file / 1e6, s.peak.hwm / 1e6, s.latency_s);
    out += line;
  }
  return out;
}

// The denoiser's inputs from the test vectors' first case, by name. Its first two inputs are the
// latents and the time (video-dit's x, t; a Wan transformer's hidden_states, timestep).
Env first_case(const Manifest& manifest, const std::string& variant, Array* eager) {
  const PartIo& io = manifest.part(variant);
  auto cases = read_cases(manifest, variant);  // as many inputs as io names, every output present
  if (io.inputs.size() < 2) throw UserError(variant + " takes fewer than two inputs (latents, time): not a denoiser");
  Env env;
  for (size_t i = 0; i < io.inputs.size(); ++i) env[io.inputs[i].name] = cases[0].inputs[i];
  for (size_t i = 0; i < 2; ++i) env.at(io.inputs[i].name) = as_float32(env.at(io.inputs[i].name));
  if (env.at(io.inputs[1].name).count() < 1) throw UserError("test_vectors/" + variant + ".npz: the time input is empty");
  if (eager) *eager = cases[0].outputs.at(io.outputs[0].name);
  return env;
}

// Euler step of the rectified-flow sampler (runtime/sampler.py): x <- x - v (t_k - t_k+1), float32.
void euler(Array& x, const Array& v, float dt) {
  if (v.shape != x.shape)  // the program's output is the folder's: never written past x
    throw UserError("the denoiser returns " + v.shape_text() + ", its input x is " + x.shape_text() +
                    " (manifest or program edited, or from another export)");
  auto* xs = reinterpret_cast<float*>(x.bytes.data());
  const auto* vs = reinterpret_cast<const float*>(v.bytes.data());
  for (size_t i = 0; i < x.count(); ++i) xs[i] = xs[i] - vs[i] * dt;
}

// The monolithic denoiser's velocity (its first output), as float32.
Array first_output(Part& part, const std::vector<const Array*>& args, const std::string& name) {
  auto outs = part.run(args);
  if (outs.empty()) throw UserError(name + " returns no output");
  return as_float32(outs[0]);
}

// The latents and the time (the denoiser's first two inputs) one step on. A time above 1 is on
// diffusers' 0..1000 timestep scale (a Wan transformer): the step in sigma is the step in t / 1000.
void next_step(Env& env, const std::vector<std::string>& names, const Array& velocity, float t0, int k, int steps) {
  float t = t0 * (1.0f - static_cast<float>(k) / steps), next = t0 * (1.0f - static_cast<float>(k + 1) / steps);
  euler(env.at(names[0]), velocity, (t - next) / (t0 > 1.0f ? 1000.0f : 1.0f));
  reinterpret_cast<float*>(env.at(names[1]).bytes.data())[0] = next;
}

// The process's CPU seconds (all its threads): at 1 thread a call's own work, steadier than wall
// time on a shared machine.
double cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

int cmd_validate(const fs::path& folder, const std::optional<fs::path>& json_path, unsigned threads, bool quiet) {
  check_json_path(json_path);
  set_threads(threads);
  ValidateReport report = validate_dir(folder, !quiet);
  std::cout << format_table(report.checks) << "\n";
  if (report.skipped) std::cout << report.skipped << " artifacts of other formats not run (the native engine runs .pte)\n";
  write_json(json_path, report_json(report));
  return passed(report.checks) ? 0 : 1;
}

int cmd_time(const fs::path& folder, int runs, unsigned threads, const std::optional<fs::path>& json_path) {
  check_json_path(json_path);
  Manifest manifest = load_manifest(folder);
  bool any = std::any_of(manifest.artifacts.begin(), manifest.artifacts.end(),
                         [](const Artifact& a) { return a.format == "executorch"; });
  if (!any) throw UserError(no_program(manifest));
  verify_checksums(manifest);
  size_t used = set_threads(threads);
  json rows = json::array();
  for (const auto& a : manifest.artifacts) {
    if (a.format != "executorch") continue;
    PartSpec spec = artifact_spec(manifest, a);
    auto cases = read_cases(manifest, a.part);
    std::vector<const Array*> args;
    for (const auto& x : cases[0].inputs) args.push_back(&x);
    Loaded l = load_timed(spec);
    l.part->run(args);  // warm-up: first-call allocations
    std::vector<double> ms, cpu_ms;
    COUNT_START();
    for (int i = 0; i < runs; ++i) {
      double t = now_s(), c = cpu_s();
      l.part->run(args);
      cpu_ms.push_back(1e3 * (cpu_s() - c));
      ms.push_back(1e3 * (now_s() - t));
    }
    COUNT_STOP();
    std::sort(ms.begin(), ms.end());
    double median = runs % 2 ? ms[runs / 2] : (ms[runs / 2 - 1] + ms[runs / 2]) / 2;
    std::printf("%s: load %.1f ms, per call median %.2f ms, min %.2f ms (%d runs, %zu threads)\n",
                a.label().c_str(), 1e3 * l.seconds, median, ms[0], runs, used);
    rows.push_back({{"artifact", a.label()}, {"load_ms", 1e3 * l.seconds}, {"median_ms", median}, {"min_ms", ms[0]},
                    {"runs_ms", ms}, {"cpu_ms", cpu_ms},
                    {"threads", used}});
  }
  write_json(json_path, rows);
  return 0;
}

int cmd_stream(const StreamOptions& options) {
  check_json_path(options.json_path);
  Manifest manifest = load_manifest(options.folder);
  Split split = open_split(manifest, true);
  StreamOptions o = options;
  if (o.variant.empty()) o.variant = split.sequences.at(0).first;  // decoded: at least one
  split.sequence(o.variant);  // an unknown variant is refused before anything loads
  fs::path vectors = inside(o.folder, "test_vectors/" + o.variant + ".npz");
  if (!fs::is_regular_file(vectors)) throw UserError(vectors.string() + " is missing; export the folder again");
  if (sha256_path(vectors) != manifest.test_vectors.at(o.variant))  // decoded: every part has one
    throw UserError(vectors.string() + " does not match its sha256 in the manifest (corrupt or changed)");
  std::optional<PartSpec> mono = find_artifact(manifest, o.variant);
  if (!mono && o.monolithic)
    throw UserError(o.variant + " was exported as parts only (its reference is the eager model's test vectors); "
                    "for every part loaded give a --memory-budget at or above its parts' size");
  if (mono)
    for (const auto& f : {std::optional<fs::path>(mono->pte), mono->ptd})
      if (f && !fs::is_regular_file(*f)) throw UserError(f->string() + " is missing; export the folder again");
  int64_t budget = o.budget.value_or(0);
  size_t threads = set_threads(o.threads);
  Memory startup = proc_status();

  Array eager;
  Env env = first_case(manifest, o.variant, &eager);
  std::vector<std::string> names;  // the denoiser's inputs: latents and time first
  for (const auto& i : manifest.part(o.variant).inputs) names.push_back(i.name);
  const float t0 = static_cast<float>(env.at(names[1]).at(0));  // the vectors' time, run down to 0 over the steps
  std::vector<Env> step_inputs;
  std::vector<Array> velocities;
  std::vector<CallStats> stats;
  json pinned = json::array();
  MemoryProbe probe;
  if (o.monolithic) {
    probe.start_window();
    Loaded l = load_timed(*mono);
    for (int k = 0; k < o.steps; ++k) {
      if (k) probe.start_window();
      CallStats s;
      s.variant = o.variant;
      double start = now_s();
      std::vector<const Array*> args;
      for (const auto& n : mono->inputs) args.push_back(&env.at(n));
      velocities.push_back(first_output(*l.part, args, mono->name));
      s.run_s = now_s() - start;
      s.parts_run = 1;
      if (k == 0) s.parts_loaded = 1, s.load_s = s.waited_s = l.seconds;
      s.latency_s = s.run_s + s.load_s;
      s.peak = probe.end_window();
      stats.push_back(s);
      step_inputs.push_back(env);
      next_step(env, names, velocities.back(), t0, k, o.steps);
    }
  } else {
    Streamer streamer(split, budget, o.prefetch, &probe);
    for (const auto& n : streamer.pinned(o.variant)) pinned.push_back(n);
    for (int k = 0; k < o.steps; ++k) {
      step_inputs.push_back(env);
      velocities.push_back(streamer(o.variant, env));
      next_step(env, names, velocities.back(), t0, k, o.steps);
    }
    stats = streamer.stats();
  }
  int64_t peak_rss = 0;
  for (const auto& s : stats) peak_rss = std::max(peak_rss, s.peak.hwm);

  // The chained output of every step against the monolithic program on the same inputs (where
  // the export has one; otherwise step 0 against the eager test vectors is the check).
  bool fp16 = mono ? mono->fp16 : std::any_of(split.parts.begin(), split.parts.end(), [](const auto& p) { return p.second.fp16; });
  std::string precision = fp16 ? "fp16" : "fp32";
  std::vector<Check> checks;
  Check first = compare(eager, velocities[0], precision);
  first.artifact = "step 0 vs eager (test vectors)";
  checks.push_back(first);
  double worst = 0;
  if (!o.monolithic && o.check && mono) {
    Loaded ref = load_timed(*mono);
    for (size_t k = 0; k < step_inputs.size(); ++k) {
      std::vector<const Array*> args;
      for (const auto& n : mono->inputs) args.push_back(&step_inputs[k].at(n));
      Check c = compare(first_output(*ref.part, args, mono->name), velocities[k], precision);
      c.artifact = "step " + std::to_string(k) + " vs " + mono->pte.filename().string();
      worst = std::max(worst, c.max_abs_error.value_or(0));
      checks.push_back(c);
    }
  }
  for (auto& c : checks) c.case_name = "seeded", c.output = manifest.part(o.variant).outputs[0].name;

  if (!o.quiet) std::cout << steps_table(stats);
  double load = 0, hidden = 0, waited = 0;
  int loads = 0;
  for (const auto& s : stats) load += s.load_s, hidden += s.hidden_s, waited += s.waited_s, loads += s.parts_loaded;
  std::printf("%s %s, %zu threads: %d steps, %d loads, %.3f s loading, %.3f s hidden, %.3f s waited; peak RSS %s\n",
              o.monolithic ? "monolithic" : ("budget " + mb(static_cast<double>(budget)) + (o.prefetch ? " + prefetch" : "")).c_str(),
              o.variant.c_str(), threads, o.steps, loads, load, hidden, waited, mb(static_cast<double>(peak_rss)).c_str());
  std::cout << format_table(checks) << "\n";

  json steps = json::array();
  for (size_t i = 0; i < stats.size(); ++i) steps.push_back(step_json(i, stats[i]));
  json rows = json::array();
  for (const auto& c : checks)
    rows.push_back({{"against", c.artifact}, {"max_abs_error", c.max_abs_error.value_or(-1)}, {"status", c.status}});
  write_json(o.json_path, {{"engine", "native"}, {"folder", o.folder.string()}, {"variant", o.variant},
                           {"mode", o.monolithic ? "monolithic" : "streamed"}, {"budget_bytes", budget},
                           {"prefetch", !o.monolithic && o.prefetch}, {"threads", threads}, {"pinned", pinned},
                           {"sequence_bytes", split.sequence_bytes(o.variant)}, {"largest_part_bytes", split.largest().size},
                           {"startup_rss_bytes", startup.anon + startup.file}, {"peak_rss_bytes", peak_rss},
                           {"steps", steps}, {"check", {{"passed", passed(checks)}, {"max_abs_error_vs_monolithic", worst},
                                                        {"rows", rows}}}});
  return passed(checks) ? 0 : 1;
}

}  // namespace tomobile
