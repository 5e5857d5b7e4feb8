// Test vectors: numpy's .npz (a zip of .npy files, stored uncompressed by numpy.savez).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace tomobile {

// One n-d array as numpy wrote it: little-endian, C order.
struct Array {
  std::string dtype;  // numpy kind + item size: "f4", "f2", "f8", "i8", "i4", "i1", "u1", "b1"
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  size_t count() const;
  size_t item_size() const;
  double at(size_t i) const;  // element i as a double, whatever the dtype
  std::string shape_text() const;  // "1x3x32x32", "-" for a scalar (as `tomobile validate` prints it)
};

Array make_array(const std::string& dtype, std::vector<int64_t> shape);
float half_to_float(uint16_t h);

// The .npy files of an .npz in the order numpy wrote them: (key without ".npy", array).
std::vector<std::pair<std::string, Array>> read_npz(const std::filesystem::path& path);

}  // namespace tomobile
