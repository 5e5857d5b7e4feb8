// An export folder as `tomobile export` writes it: manifest.json, files named relative to the
// folder (kept inside it), sha256 per file (a folder such as .mlpackage hashed as its sorted
// relative paths and contents, as runtime/manifest.py's sha256_path does).
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace tomobile {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;  // keys in the order the manifest lists them (sequences, files)

// Bad input a user can fix (a missing or altered file, a bad option): one line, exit code 2.
struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

fs::path inside(const fs::path& folder, const std::string& rel);  // folder / rel; rel relative and inside
std::string sha256_path(const fs::path& path);

}  // namespace tomobile
