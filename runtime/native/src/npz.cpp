// A reader for what numpy.savez writes: zip entries stored (method 0), zip64 extras where numpy
// forced them, each entry an .npy file (format 1.0-3.0, little-endian, C order).
#include "npz.h"

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "folder.h"

namespace tomobile {
namespace {

uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

struct Reader {
  const std::vector<uint8_t>& data;
  std::string what;
  const uint8_t* at(uint64_t offset, uint64_t size) const {
    if (offset > data.size() || size > data.size() - offset) throw UserError(what + " is truncated or not an .npz file");
    return data.data() + offset;
  }
};

// "(1, 3)" or "()" -> dims; anything else (a negative or non-digit dim) is a bad header.
std::vector<int64_t> parse_shape(const std::string& text, const std::string& what) {
  std::vector<int64_t> shape;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t a = item.find_first_not_of(' '), b = item.find_last_not_of(' ');
    if (a == std::string::npos) continue;
    item = item.substr(a, b - a + 1);
    if (item.size() > 12 || item.find_first_not_of("0123456789") != std::string::npos)
      throw UserError(what + ": .npy shape (" + text + ") is not a list of non-negative dims");
    shape.push_back(std::stoll(item));
  }
  return shape;
}

// "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }" -> dtype, shape.
Array parse_header(const std::string& header, const std::string& what) {
  auto value_of = [&](const std::string& key) {
    size_t k = header.find("'" + key + "'");
    if (k == std::string::npos) throw UserError(what + ": .npy header without '" + key + "'");
    size_t colon = header.find(':', k);
    if (colon == std::string::npos) throw UserError(what + ": .npy header without a value for '" + key + "'");
    return header.substr(colon + 1);
  };
  std::string descr = value_of("descr");
  size_t q1 = descr.find('\''), q2 = q1 == std::string::npos ? q1 : descr.find('\'', q1 + 1);
  if (q2 == std::string::npos) throw UserError(what + ": .npy header's descr is not a quoted dtype");
  descr = descr.substr(q1 + 1, q2 - q1 - 1);  // '<f4', '|b1', '|u1'
  if (descr.size() != 3 || (descr[0] != '<' && descr[0] != '|'))
    throw UserError(what + ": dtype " + descr + " is not a little-endian number type");
  std::string order = value_of("fortran_order");
  if (order.find("True") < order.find(',')) throw UserError(what + ": Fortran-order arrays are not supported");
  std::string shape_text = value_of("shape");
  size_t open = shape_text.find('('), close = shape_text.find(')');
  if (open == std::string::npos || close == std::string::npos || close < open)
    throw UserError(what + ": .npy header's shape is not a tuple");
  Array a;
  a.dtype = dtype_of_numpy(descr.substr(1));
  a.shape = parse_shape(shape_text.substr(open + 1, close - open - 1), what);
  return a;
}

Array parse_npy(const uint8_t* p, uint64_t size, const std::string& what) {
  if (size < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0) throw UserError(what + " is not an .npy array");
  int major = p[6];
  if (major < 1 || major > 3) throw UserError(what + ": .npy format version " + std::to_string(major) + " is not 1-3");
  if (major > 1 && size < 12) throw UserError(what + " is not an .npy array");
  uint64_t header_len = major == 1 ? le(p + 8, 2) : le(p + 8, 4);
  uint64_t start = (major == 1 ? 10 : 12) + header_len;
  if (start > size) throw UserError(what + ": .npy header runs past the data");
  Array a = parse_header(std::string(reinterpret_cast<const char*>(p) + (major == 1 ? 10 : 12), header_len), what);
  uint64_t count = 1;  // the element count, refused before it can overflow
  for (int64_t d : a.shape) {
    if (d != 0 && count > (uint64_t{1} << 40) / static_cast<uint64_t>(d)) throw UserError(what + ": .npy shape is too large");
    count *= static_cast<uint64_t>(d);
  }
  uint64_t nbytes = count * a.item_size();
  if (size - start != nbytes) throw UserError(what + ": .npy data is not the size its header gives");
  a.bytes.assign(p + start, p + start + nbytes);
  return a;
}

}  // namespace

Dtype dtype_of_numpy(const std::string& code) {
  static const std::pair<const char*, Dtype> known[] = {
      {"f4", Dtype::F32}, {"f2", Dtype::F16}, {"f8", Dtype::F64}, {"i8", Dtype::I64}, {"i4", Dtype::I32},
      {"i2", Dtype::I16}, {"i1", Dtype::I8},  {"u1", Dtype::U8},  {"b1", Dtype::Bool}};
  for (const auto& [c, d] : known)
    if (code == c) return d;
  throw UserError("test vector dtype " + code + " is not supported (f2, f4, f8, i1-i8, u1, b1)");
}

const char* numpy_code(Dtype dtype) {
  switch (dtype) {
    case Dtype::F32: return "f4";
    case Dtype::F16: return "f2";
    case Dtype::F64: return "f8";
    case Dtype::I64: return "i8";
    case Dtype::I32: return "i4";
    case Dtype::I16: return "i2";
    case Dtype::I8: return "i1";
    case Dtype::U8: return "u1";
    case Dtype::Bool: return "b1";
  }
  return "?";
}

size_t item_size(Dtype dtype) { return static_cast<size_t>(numpy_code(dtype)[1] - '0'); }

size_t Array::count() const {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

size_t Array::item_size() const { return tomobile::item_size(dtype); }

float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    int e = -1;
    do { ++e; man <<= 1; } while ((man & 0x400u) == 0);
    bits = sign | ((112 - e) << 23) | ((man & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

double Array::at(size_t i) const {
  const uint8_t* p = bytes.data() + i * item_size();
  auto load = [p](auto v) { std::memcpy(&v, p, sizeof(v)); return v; };
  switch (dtype) {
    case Dtype::F32: return load(float{});
    case Dtype::F64: return load(double{});
    case Dtype::F16: return half_to_float(load(uint16_t{}));
    case Dtype::I64: return static_cast<double>(load(int64_t{}));
    case Dtype::I32: return load(int32_t{});
    case Dtype::I16: return load(int16_t{});
    case Dtype::I8: return load(int8_t{});
    case Dtype::U8:
    case Dtype::Bool: return *p;
  }
  return *p;
}

std::string Array::shape_text() const {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s.empty() ? "-" : s;
}

Array make_array(Dtype dtype, std::vector<int64_t> shape) {
  Array a;
  a.dtype = dtype;
  a.shape = std::move(shape);
  a.bytes.assign(a.count() * a.item_size(), 0);
  return a;
}

std::vector<std::pair<std::string, Array>> read_npz(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw UserError(path.string() + " cannot be read");
  std::vector<uint8_t> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Reader r{data, path.string()};
  // End of central directory: the last "PK\5\6" within the final 64 KiB + 22 bytes.
  if (data.size() < 22) throw UserError(path.string() + " is not an .npz file");
  int64_t eocd = -1;
  for (int64_t i = static_cast<int64_t>(data.size()) - 22; i >= 0 && i >= static_cast<int64_t>(data.size()) - 65557; --i)
    if (le(&data[i], 4) == 0x06054b50) { eocd = i; break; }
  if (eocd < 0) throw UserError(path.string() + " is not an .npz file (no zip directory)");
  uint64_t entries = le(&data[eocd + 10], 2), cd_offset = le(&data[eocd + 16], 4);
  if ((entries == 0xffff || cd_offset == 0xffffffffu) && eocd >= 20 && le(&data[eocd - 20], 4) == 0x07064b50) {
    const uint8_t* z = r.at(le(&data[eocd - 20 + 8], 8), 56);  // zip64 end of central directory
    entries = le(z + 32, 8);
    cd_offset = le(z + 48, 8);
  }
  std::vector<std::pair<std::string, Array>> out;
  uint64_t pos = cd_offset;
  for (uint64_t n = 0; n < entries; ++n) {
    const uint8_t* c = r.at(pos, 46);
    if (le(c, 4) != 0x02014b50) throw UserError(path.string() + ": broken zip directory");
    uint64_t method = le(c + 10, 2), size = le(c + 24, 4), comp = le(c + 20, 4), local = le(c + 42, 4);
    uint64_t name_len = le(c + 28, 2), extra_len = le(c + 30, 2), comment_len = le(c + 32, 2);
    std::string name(reinterpret_cast<const char*>(r.at(pos + 46, name_len)), name_len);
    const uint8_t* extra = r.at(pos + 46 + name_len, extra_len);
    for (uint64_t e = 0; e + 4 <= extra_len;) {  // zip64 extra: the fields that read 0xffffffff, in order
      uint64_t id = le(extra + e, 2), len = le(extra + e + 2, 2), q = e + 4;
      if (id == 1) {
        if (size == 0xffffffffu) { size = le(extra + q, 8); q += 8; }
        if (comp == 0xffffffffu) { comp = le(extra + q, 8); q += 8; }
        if (local == 0xffffffffu) { local = le(extra + q, 8); }
      }
      e += 4 + len;
    }
    if (method != 0) throw UserError(path.string() + ": " + name + " is compressed; numpy.savez stores arrays uncompressed");
    const uint8_t* h = r.at(local, 30);
    uint64_t start = local + 30 + le(h + 26, 2) + le(h + 28, 2);
    std::string key = name.size() > 4 && name.substr(name.size() - 4) == ".npy" ? name.substr(0, name.size() - 4) : name;
    out.emplace_back(key, parse_npy(r.at(start, size), size, path.string() + ":" + name));
    pos += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

}  // namespace tomobile
