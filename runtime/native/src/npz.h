// Test vectors: numpy's .npz (a zip of .npy files, stored uncompressed by numpy.savez).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace tomobile {

// The element types the engine reads and runs: numpy's little-endian number types.
enum class Dtype { F32, F16, F64, I64, I32, I16, I8, U8, Bool };

Dtype dtype_of_numpy(const std::string& code);  // "f4" -> F32 (numpy kind + item size); UserError otherwise
const char* numpy_code(Dtype dtype);             // F32 -> "f4"
size_t item_size(Dtype dtype);

// One n-d array as numpy wrote it: little-endian, C order.
struct Array {
  Dtype dtype = Dtype::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  size_t count() const;
  size_t item_size() const;
  double at(size_t i) const;  // element i as a double, whatever the dtype
  std::string shape_text() const;  // "1x3x32x32", "-" for a scalar (as `tomobile validate` prints it)
};

Array make_array(Dtype dtype, std::vector<int64_t> shape);
float half_to_float(uint16_t h);

// The .npy files of an .npz in the order numpy wrote them: (key without ".npy", array).
std::vector<std::pair<std::string, Array>> read_npz(const std::filesystem::path& path);

}  // namespace tomobile
