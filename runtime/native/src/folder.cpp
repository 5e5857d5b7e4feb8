#include "folder.h"

#include <openssl/evp.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <vector>

namespace tomobile {

json load_manifest(const fs::path& folder) {
  fs::path path = folder / "manifest.json";
  if (!fs::is_regular_file(path)) throw UserError(folder.string() + " has no manifest.json: not a tomobile export folder");
  std::ifstream f(path);
  json m = json::parse(f, nullptr, false);
  if (m.is_discarded()) throw UserError(path.string() + " is not valid JSON");
  auto require = [&](bool ok, const std::string& what) {
    if (!ok) throw UserError(path.string() + " is not a tomobile manifest: " + what);
  };
  require(m.is_object() && m.contains("tomobile_manifest"), "no 'tomobile_manifest' key");
  require(m.contains("parts") && m["parts"].is_object() && !m["parts"].empty(), "'parts' is missing or empty");
  require(m.contains("artifacts") && m["artifacts"].is_array() && !m["artifacts"].empty(),
          "'artifacts' is missing or empty");
  for (const auto& a : m["artifacts"])
    for (const char* key : {"format", "part", "path", "sha256"})
      require(a.is_object() && a.contains(key) && a[key].is_string(), std::string("an artifact has no '") + key + "' string");
  return m;
}

fs::path inside(const fs::path& folder, const json& rel) {
  std::string text = rel.is_string() ? rel.get<std::string>() : rel.dump();
  fs::path p(text);
  bool dotdot = std::any_of(p.begin(), p.end(), [](const fs::path& c) { return c == ".."; });
  if (!rel.is_string() || text.empty() || p.is_absolute() || dotdot)
    throw UserError((folder / "manifest.json").string() + " names the path '" + text +
                    "'; paths must be relative and inside the folder");
  fs::path full = folder / p;
  std::error_code ec;
  fs::path root = fs::weakly_canonical(folder, ec), real = fs::weakly_canonical(full, ec);
  auto [r, _] = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
  if (r != root.end()) throw UserError(full.string() + " leads out of " + folder.string() + " (a link); artifact paths must stay inside the folder");
  return full;
}

namespace {

struct Digest {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), EVP_MD_CTX_free};
  Digest() { EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr); }
  void update(const void* p, size_t n) { EVP_DigestUpdate(ctx.get(), p, n); }
  void file(const fs::path& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw UserError(path.string() + " cannot be read");
    std::vector<char> buf(1 << 20);
    while (f) {
      f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      update(buf.data(), static_cast<size_t>(f.gcount()));
    }
  }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx.get(), md, &n);
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (unsigned int i = 0; i < n; ++i) s += {digits[md[i] >> 4], digits[md[i] & 15]};
    return s;
  }
};

// Python's sorted() over Path objects compares their parts, not the joined string.
bool path_less(const fs::path& a, const fs::path& b) {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                      [](const fs::path& x, const fs::path& y) { return x.string() < y.string(); });
}

}  // namespace

std::string sha256_path(const fs::path& path) {
  Digest d;
  if (fs::is_regular_file(path)) {
    d.file(path);
    return d.hex();
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(path))
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), path));
  std::sort(files.begin(), files.end(), path_less);
  for (const auto& rel : files) {
    std::string name = rel.string();
    d.update(name.data(), name.size());
    d.file(path / rel);
  }
  return d.hex();
}

void verify_checksums(const fs::path& folder, const json& manifest) {
  std::vector<std::pair<std::string, std::string>> expected;  // (relative path, sha256) in the manifest's order
  auto add = [&](const std::string& rel, const std::string& digest) {
    for (auto& e : expected)
      if (e.first == rel) { e.second = digest; return; }
    expected.emplace_back(rel, digest);
  };
  for (const auto& a : manifest["artifacts"]) add(a["path"], a["sha256"]);
  for (const auto& a : manifest["artifacts"])
    for (const char* key : {"weights", "external_data"})
      if (a.contains(key)) add(a[key]["path"], a[key]["sha256"]);
  const json files = manifest.value("files", json::object()), vectors = manifest.value("test_vectors", json::object());
  for (const auto& [rel, digest] : files.items()) add(rel, digest);
  for (const auto& [stem, digest] : vectors.items()) add("test_vectors/" + stem + ".npz", digest);
  for (const auto& [rel, digest] : expected) {
    fs::path path = inside(folder, rel);
    if (!fs::exists(path)) throw UserError(path.string() + " is listed in the manifest but missing");
    if (sha256_path(path) != digest)
      throw UserError(path.string() + " does not match its sha256 in the manifest (corrupt or changed)");
  }
}

}  // namespace tomobile
