#include "folder.h"

#include <openssl/evp.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <vector>

namespace tomobile {

fs::path inside(const fs::path& folder, const std::string& text) {
  fs::path p(text);
  bool dotdot = std::any_of(p.begin(), p.end(), [](const fs::path& c) { return c == ".."; });
  if (text.empty() || p.is_absolute() || dotdot)
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

std::string sha256_path(const fs::path& path) try {
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
} catch (const fs::filesystem_error& err) {  // an unreadable folder entry: the folder's fault
  throw UserError(path.string() + " cannot be read (" + err.code().message() + ")");
}

}  // namespace tomobile
