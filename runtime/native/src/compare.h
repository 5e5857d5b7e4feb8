// One output against its eager reference, with `tomobile validate`'s thresholds
// (runtime/validate.py), and the table it prints.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "npz.h"

namespace tomobile {

constexpr double FP32_MAX_ABS_ERROR = 1e-4;  // fp32 artifacts: max abs error against eager fp32
constexpr double FP16_MIN_PSNR_DB = 35.0;    // fp16 artifacts: PSNR against eager fp32
constexpr double INT8_MIN_PSNR_DB = 30.0;    // int8 artifacts: PSNR against eager fp32
inline const char* PASS = "pass";
inline const char* FAIL = "FAIL";

struct Check {
  std::string artifact, case_name, output, shape;
  std::optional<double> max_abs_error, psnr_db;
  std::string status, note;
};

// (max abs error, PSNR, status, note) of `actual` against `reference` for `precision` (fp32, fp16, int8).
Check compare(const Array& reference, const Array& actual, const std::string& precision);
double psnr(const Array& reference, const Array& actual);  // 20 log10(max|ref| / rmse); inf when equal

std::string format_table(const std::vector<Check>& checks);  // the table and verdict line of `tomobile validate`
bool passed(const std::vector<Check>& checks);

}  // namespace tomobile
