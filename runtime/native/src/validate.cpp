#include "validate.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "manifest.h"
#include "part.h"
#include "split.h"
#include "stream.h"

namespace tomobile {
namespace {

std::string one_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::vector<Check> run_artifact(const Manifest& manifest, const Artifact& artifact) {
  PartSpec spec = artifact_spec(manifest, artifact);
  std::vector<Check> checks;
  Part part(spec.pte, spec.ptd, spec.method);
  for (const auto& c : read_cases(manifest, artifact.part)) {
    std::vector<const Array*> args;
    for (const auto& a : c.inputs) args.push_back(&a);
    auto outputs = part.run(args);
    if (outputs.size() != spec.outputs.size())
      throw UserError("the program returns " + std::to_string(outputs.size()) + " outputs, the manifest lists " +
                      std::to_string(spec.outputs.size()));
    for (size_t i = 0; i < outputs.size(); ++i) {
      Check k = compare(c.outputs.at(spec.outputs[i]), outputs[i], artifact.precision);  // read_cases: present
      k.artifact = artifact.label();  // the file, with its method where a weight group's parts share it
      k.case_name = c.name;
      k.output = spec.outputs[i];
      checks.push_back(k);
    }
  }
  return checks;
}

// Each variant's parts chained in order (all resident) on the monolithic denoiser's vectors.
std::vector<Check> check_chains(const Manifest& manifest) {
  std::vector<Check> checks;
  bool any = std::any_of(manifest.split->parts.begin(), manifest.split->parts.end(),
                         [](const SplitPart& p) { return p.files.count("executorch") > 0; });
  if (!any) return checks;
  Split split = open_split(manifest, false);  // the checksums were verified already
  Streamer streamer(split, int64_t{1} << 62, false, nullptr);
  bool fp16 = std::any_of(split.parts.begin(), split.parts.end(), [](const auto& p) { return p.second.fp16; });
  for (const auto& [variant, seq] : split.sequences) {
    std::vector<std::string> names = manifest.part(variant).input_names();
    std::string output = manifest.part(variant).outputs.at(0).name;  // decoded: never empty
    for (auto& c : read_cases(manifest, variant)) {
      Env env;
      for (size_t i = 0; i < names.size(); ++i) env[names[i]] = c.inputs.at(i);  // read_cases: as many as names
      Array out = streamer(variant, env);
      Check k = compare(c.outputs.at(output), out, fp16 ? "fp16" : "fp32");
      k.artifact = "chain " + variant + " (executorch)";
      k.case_name = c.name;
      k.output = output;
      checks.push_back(k);
    }
  }
  return checks;
}

Check load_failure(const std::string& artifact, const std::exception& err) {
  return {artifact, "load", "-", "-", std::nullopt, std::nullopt, FAIL, one_line(err.what())};
}

}  // namespace

std::string no_program(const Manifest& manifest) {
  std::string formats;
  for (const auto& f : manifest.formats()) formats += (formats.empty() ? "" : ", ") + f;
  return manifest.folder.string() + " holds no ExecuTorch program (its formats: " + formats +
         "); the native engine runs .pte files: export with --format executorch";
}

ValidateReport validate_dir(const fs::path& folder, bool progress) {
  Manifest manifest = load_manifest(folder);
  if (!manifest.has_executorch()) throw UserError(no_program(manifest));
  verify_checksums(manifest);
  ValidateReport report;
  size_t total = 0, done = 0;
  for (const auto& a : manifest.artifacts) total += a.format == "executorch";
  progress = progress && isatty(STDERR_FILENO);
  for (const auto& a : manifest.artifacts) {
    if (a.format != "executorch") {
      report.skipped += 1;
      continue;
    }
    if (progress) std::fprintf(stderr, "\rvalidate: %zu/%zu programs", done, total);
    try {
      auto rows = run_artifact(manifest, a);
      report.checks.insert(report.checks.end(), rows.begin(), rows.end());
    } catch (const std::exception& err) {  // a program that cannot load or run is a failure to report
      report.checks.push_back(load_failure(a.label(), err));
    }
    ++done;
  }
  if (progress) std::fprintf(stderr, "\rvalidate: %zu/%zu programs\n", done, total);
  if (manifest.split) {
    try {
      auto rows = check_chains(manifest);
      report.checks.insert(report.checks.end(), rows.begin(), rows.end());
    } catch (const std::exception& err) {
      report.checks.push_back(load_failure("chain (executorch)", err));
    }
  }
  return report;
}

json report_json(const ValidateReport& report) {
  json rows = json::array();
  auto number = [](const std::optional<double>& v) -> json {
    if (!v) return nullptr;
    if (std::isinf(*v)) return "inf";
    if (std::isnan(*v)) return "nan";
    return *v;
  };
  for (const auto& c : report.checks)
    rows.push_back({{"artifact", c.artifact}, {"case", c.case_name}, {"output", c.output}, {"shape", c.shape},
                    {"max_abs_error", number(c.max_abs_error)}, {"psnr_db", number(c.psnr_db)},
                    {"status", c.status}, {"note", c.note}});
  return {{"passed", passed(report.checks)}, {"skipped_artifacts", report.skipped},
          {"thresholds", {{"fp32_max_abs_error", FP32_MAX_ABS_ERROR}, {"fp16_min_psnr_db", FP16_MIN_PSNR_DB},
                          {"int8_min_psnr_db", INT8_MIN_PSNR_DB}}},
          {"checks", rows}};
}

}  // namespace tomobile
