#include "split.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace tomobile {

const std::vector<std::string>& Split::sequence(const std::string& variant) const {
  std::string names;
  for (const auto& [v, seq] : sequences) {
    if (v == variant) return seq;
    names += (names.empty() ? "" : ", ") + v;
  }
  throw UserError("variant " + variant + " has no parts; split variants: " + names);
}

int64_t Split::sequence_bytes(const std::string& variant) const {
  std::set<std::string> seen;
  int64_t total = 0;
  for (const auto& n : sequence(variant))
    if (seen.insert(n).second) total += parts.at(n).size;
  return total;
}

const PartSpec& Split::largest() const {
  return std::max_element(parts.begin(), parts.end(), [](const auto& a, const auto& b) {
           return a.second.size < b.second.size;
         })->second;
}

namespace {

bool is_fp16(const json& manifest, const std::string& part) {
  for (const auto& a : manifest["artifacts"])
    if (a["part"] == part && a["format"] == "executorch" && a.value("float_io", "") == "float16") return true;
  return false;
}

void verify_parts(const fs::path& folder, const json& entries) {
  std::map<std::string, std::string> owners;  // sha256 -> path
  std::vector<std::pair<std::string, json>> files;
  for (const auto& e : entries) {
    const json& rec = e["files"]["executorch"];
    for (const json* f : {&rec, rec.contains("weights") ? &rec["weights"] : nullptr})
      if (f != nullptr) {
        owners[(*f)["sha256"]] = (*f)["path"];
        files.emplace_back(e["name"], *f);
      }
  }
  for (const auto& [name, f] : files) {
    fs::path path = inside(folder, f["path"]);
    if (!fs::is_regular_file(path)) throw UserError("part " + name + ": " + path.string() + " is missing; export the folder again");
    std::string digest = sha256_path(path);
    if (digest == f["sha256"]) continue;
    if (owners.count(digest))
      throw UserError("part " + name + ": " + path.string() + " holds " + owners[digest] +
                      " (a different part), not the part its manifest lists; export the folder again");
    throw UserError("part " + name + ": " + path.string() +
                    " does not match its sha256 in the manifest (altered, or from another export); export the folder again");
  }
}

}  // namespace

Split open_split(const fs::path& folder, const json& manifest, bool verify) {
  if (!manifest.contains("split") || !manifest["split"].contains("parts"))
    throw UserError(folder.string() + " was exported without --split blocks; streaming needs `tomobile export " +
                    manifest.value("model", "MODEL") + " --split blocks --format executorch --out " + folder.string() + "`");
  const json& split = manifest["split"];
  Split s;
  s.folder = folder;
  for (const auto& e : split["parts"]) {
    std::string name = e["name"];
    if (!e["files"].contains("executorch"))
      throw UserError(folder.string() + " has no executorch parts (part " + name + "); export with --format executorch");
    const json& rec = e["files"]["executorch"];
    PartSpec p;
    p.name = name;
    p.pte = inside(folder, rec["path"]);
    if (rec.contains("weights")) p.ptd = inside(folder, rec["weights"]["path"]);
    p.method = rec.value("method", "forward");
    p.size = rec["total_bytes"];
    for (const auto& i : e["inputs"]) p.inputs.push_back(i["name"]);
    for (const auto& o : e["outputs"]) p.outputs.push_back(o["name"]);
    p.fp16 = is_fp16(manifest, name);
    s.parts[name] = p;
  }
  for (const auto& [variant, seq] : split["sequences"].items()) s.sequences.emplace_back(variant, seq.get<std::vector<std::string>>());
  if (verify) verify_parts(folder, split["parts"]);
  return s;
}

std::set<std::string> plan_pinned(const std::vector<std::pair<std::string, int64_t>>& sizes, int64_t budget,
                                  bool prefetch) {
  std::set<std::string> pinned;
  int64_t total = 0;
  for (const auto& [n, s] : sizes) total += s;
  if (total <= budget) {
    for (const auto& [n, s] : sizes) pinned.insert(n);
    return pinned;
  }
  size_t room = prefetch ? 2 : 1;
  int64_t pinned_bytes = 0;
  for (const auto& [name, size] : sizes) {
    std::vector<int64_t> rest;
    for (const auto& [n, s] : sizes)
      if (!pinned.count(n) && n != name) rest.push_back(s);
    std::sort(rest.rbegin(), rest.rend());
    int64_t streamed = 0;
    for (size_t i = 0; i < std::min(room, rest.size()); ++i) streamed += rest[i];
    if (pinned_bytes + size + streamed <= budget) {
      pinned.insert(name);
      pinned_bytes += size;
    }
  }
  return pinned;
}

int64_t parse_bytes(const std::string& text) {
  std::string raw;
  for (char c : text)
    if (c != ' ') raw += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  size_t end = raw.find_last_not_of("KMGIB");
  std::string number = end == std::string::npos ? "" : raw.substr(0, end + 1), unit = raw.substr(number.size());
  const std::map<std::string, double> units = {{"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
                                               {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}};
  double value = -1;
  try {
    size_t used = 0;
    value = std::stod(number, &used);
    if (used != number.size()) value = -1;
  } catch (const std::exception&) {
  }
  if (!units.count(unit) || !(value > 0))
    throw UserError("memory budget '" + text + "' is not a size; give e.g. 64MB, 1.5GB, 512MiB or a byte count");
  return static_cast<int64_t>(value * units.at(unit));
}

std::string mb(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.1f GB", n / 1e9);
  else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.1f MB", n / 1e6);
  else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.1f KB", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%d B", static_cast<int>(n));
  return buf;
}

PartSpec artifact_for(const fs::path& folder, const json& manifest, const std::string& part) {
  for (const auto& a : manifest["artifacts"]) {
    if (a["part"] != part || a["format"] != "executorch") continue;
    PartSpec p;
    p.name = part;
    p.pte = inside(folder, a["path"]);
    if (a.contains("weights")) p.ptd = inside(folder, a["weights"]["path"]);
    p.method = a.value("method", "forward");
    p.size = a.value("bytes", 0) + (a.contains("weights") ? a["weights"].value("bytes", 0) : 0);
    p.fp16 = a.value("float_io", "") == "float16";
    for (const auto& i : manifest["parts"][part]["inputs"]) p.inputs.push_back(i["name"]);
    for (const auto& o : manifest["parts"][part]["outputs"]) p.outputs.push_back(o["name"]);
    return p;
  }
  throw UserError(folder.string() + " has no executorch artifact for " + part + "; export with --format executorch");
}

std::vector<Case> read_cases(const fs::path& folder, const std::string& part) {
  std::vector<Case> cases;
  for (auto& [key, array] : read_npz(folder / "test_vectors" / (part + ".npz"))) {
    size_t a = key.find('.'), b = key.find('.', a + 1);
    if (a == std::string::npos || b == std::string::npos) throw UserError("test vector " + key + " is not CASE.KIND.NAME");
    std::string name = key.substr(0, a), kind = key.substr(a + 1, b - a - 1);
    auto it = std::find_if(cases.begin(), cases.end(), [&](const Case& c) { return c.name == name; });
    if (it == cases.end()) it = cases.insert(cases.end(), Case{name, {}, {}});
    if (kind == "input") it->inputs.push_back(std::move(array));
    else it->outputs[key.substr(b + 1)] = std::move(array);
  }
  return cases;
}

}  // namespace tomobile
