#include "validate.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "part.h"
#include "split.h"
#include "stream.h"

namespace tomobile {
namespace {

std::string one_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::vector<Check> run_artifact(const fs::path& folder, const json& artifact, const json& manifest) {
  PartSpec spec = artifact_for(folder, manifest, artifact["part"]);
  spec.pte = inside(folder, artifact["path"]);  // this artifact, whatever others the part has
  spec.ptd.reset();
  if (artifact.contains("weights")) spec.ptd = inside(folder, artifact["weights"]["path"]);
  spec.method = artifact.value("method", "forward");
  std::string precision = artifact.value("precision", "fp32");
  std::vector<Check> checks;
  Part part(spec.pte, spec.ptd, spec.method);
  for (const auto& c : read_cases(folder, artifact["part"])) {
    std::vector<const Array*> args;
    for (const auto& a : c.inputs) args.push_back(&a);
    auto outputs = part.run(args);
    if (outputs.size() != spec.outputs.size())
      throw std::runtime_error("the program returns " + std::to_string(outputs.size()) + " outputs, the manifest lists " +
                               std::to_string(spec.outputs.size()));
    for (size_t i = 0; i < outputs.size(); ++i) {
      Check k = compare(c.outputs.at(spec.outputs[i]), outputs[i], precision);
      // The file, with its method where a weight group's parts share it (as `tomobile validate` labels it).
      k.artifact = artifact.contains("method") ? artifact["path"].get<std::string>() + ":" + artifact["method"].get<std::string>()
                                               : artifact["path"].get<std::string>();
      k.case_name = c.name;
      k.output = spec.outputs[i];
      checks.push_back(k);
    }
  }
  return checks;
}

// Each variant's parts chained in order (all resident) on the monolithic denoiser's vectors.
std::vector<Check> check_chains(const fs::path& folder, const json& manifest) {
  std::vector<Check> checks;
  bool any = false;
  for (const auto& p : manifest["split"]["parts"]) any = any || p["files"].contains("executorch");
  if (!any) return checks;
  Split split = open_split(folder, manifest, false);  // the checksums were verified already
  Streamer streamer(split, int64_t{1} << 62, false, nullptr);
  bool fp16 = std::any_of(split.parts.begin(), split.parts.end(), [](const auto& p) { return p.second.fp16; });
  for (const auto& [variant, seq] : split.sequences) {
    std::vector<std::string> names;
    for (const auto& i : manifest["parts"][variant]["inputs"]) names.push_back(i["name"]);
    for (auto& c : read_cases(folder, variant)) {
      Env env;
      for (size_t i = 0; i < names.size(); ++i) env[names[i]] = c.inputs.at(i);
      Array out = streamer(variant, env);
      Check k = compare(c.outputs.at("velocity"), out, fp16 ? "fp16" : "fp32");
      k.artifact = "chain " + variant + " (executorch)";
      k.case_name = c.name;
      k.output = "velocity";
      checks.push_back(k);
    }
  }
  return checks;
}

}  // namespace

ValidateReport validate_dir(const fs::path& folder, bool progress) {
  json manifest = load_manifest(folder);
  verify_checksums(folder, manifest);
  ValidateReport report;
  size_t total = 0, done = 0;
  for (const auto& a : manifest["artifacts"]) total += a["format"] == "executorch";
  progress = progress && isatty(STDERR_FILENO);
  for (const auto& a : manifest["artifacts"]) {
    if (a["format"] != "executorch") {
      report.skipped += 1;
      continue;
    }
    if (progress) std::fprintf(stderr, "\rvalidate: %zu/%zu programs", done, total);
    try {
      auto rows = run_artifact(folder, a, manifest);
      report.checks.insert(report.checks.end(), rows.begin(), rows.end());
    } catch (const std::exception& err) {  // a program that cannot load or run is a failure to report
      report.checks.push_back({a["path"], "load", "-", "-", std::nullopt, std::nullopt, FAIL, one_line(err.what())});
    }
    ++done;
  }
  if (progress) std::fprintf(stderr, "\rvalidate: %zu/%zu programs\n", done, total);
  if (manifest.contains("split")) {
    try {
      auto rows = check_chains(folder, manifest);
      report.checks.insert(report.checks.end(), rows.begin(), rows.end());
    } catch (const std::exception& err) {
      report.checks.push_back({"chain (executorch)", "load", "-", "-", std::nullopt, std::nullopt, FAIL, one_line(err.what())});
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
