#include "compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace tomobile {

double psnr(const Array& reference, const Array& actual) {
  double sum = 0.0, peak = 0.0;
  for (size_t i = 0; i < reference.count(); ++i) {
    double r = reference.at(i), d = r - actual.at(i);
    sum += d * d;
    peak = std::max(peak, std::fabs(r));
  }
  double mse = sum / static_cast<double>(reference.count());
  if (mse == 0.0) return std::numeric_limits<double>::infinity();
  if (peak == 0.0) peak = 1.0;
  return 20.0 * std::log10(peak / std::sqrt(mse));
}

Check compare(const Array& reference, const Array& actual, const std::string& precision) {
  Check c;
  c.shape = actual.shape_text();
  if (reference.shape != actual.shape) {
    c.max_abs_error = c.psnr_db = std::nan("");
    c.status = FAIL;
    c.note = "shape " + actual.shape_text() + " != eager " + reference.shape_text();
    return c;
  }
  double err = 0.0;
  bool finite = true;
  for (size_t i = 0; i < reference.count(); ++i) {
    double a = actual.at(i), d = std::fabs(reference.at(i) - a);
    finite = finite && std::isfinite(a);
    err = std::isnan(d) || std::isnan(err) ? std::nan("") : std::max(err, d);
  }
  c.max_abs_error = err;
  c.psnr_db = psnr(reference, actual);
  char note[64];
  if (!finite) {
    c.status = FAIL;
    c.note = "non-finite values";
  } else if (precision == "fp16" || precision == "int8") {
    double floor = precision == "fp16" ? FP16_MIN_PSNR_DB : INT8_MIN_PSNR_DB;
    c.status = *c.psnr_db >= floor ? PASS : FAIL;
    std::snprintf(note, sizeof note, "PSNR >= %g dB", floor);
    c.note = note;
  } else {
    c.status = err <= FP32_MAX_ABS_ERROR ? PASS : FAIL;
    std::snprintf(note, sizeof note, "max abs <= %g", FP32_MAX_ABS_ERROR);
    c.note = note;
  }
  return c;
}

bool passed(const std::vector<Check>& checks) {
  return !checks.empty() && std::none_of(checks.begin(), checks.end(), [](const Check& c) { return c.status == FAIL; });
}

std::string format_table(const std::vector<Check>& checks) {
  std::vector<std::vector<std::string>> rows = {{"artifact", "case", "output", "shape", "max abs err", "PSNR dB", "result"}};
  char buf[64];
  for (const auto& c : checks) {
    std::string err = "-", db = "-";
    if (c.max_abs_error) { std::snprintf(buf, sizeof buf, "%.2e", *c.max_abs_error); err = buf; }
    if (c.psnr_db) {
      if (std::isinf(*c.psnr_db)) db = "inf";
      else { std::snprintf(buf, sizeof buf, "%.1f", *c.psnr_db); db = buf; }
    }
    rows.push_back({c.artifact, c.case_name, c.output, c.shape, err, db, c.status == FAIL ? "FAIL (" + c.note + ")" : c.status});
  }
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) widths[i] = std::max(widths[i], r[i].size());
  auto join = [&](const std::vector<std::string>& r) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) line += (i ? "  " : "") + r[i] + std::string(widths[i] - r[i].size(), ' ');
    return line.substr(0, line.find_last_not_of(' ') + 1);
  };
  std::string out = join(rows[0]) + "\n";
  std::vector<std::string> dashes;
  for (size_t w : widths) dashes.push_back(std::string(w, '-'));
  out += join(dashes) + "\n";
  for (size_t i = 1; i < rows.size(); ++i) out += join(rows[i]) + "\n";
  auto count = [&](const char* s) { return std::count_if(checks.begin(), checks.end(), [s](const Check& c) { return c.status == s; }); };
  out += std::string("validation ") + (passed(checks) ? "PASSED" : "FAILED") + ": " + std::to_string(count(PASS)) +
         " pass, " + std::to_string(count(FAIL)) + " fail, 0 need macOS";
  return out;
}

}  // namespace tomobile
