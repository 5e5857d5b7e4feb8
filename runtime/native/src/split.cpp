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

bool is_fp16(const Manifest& manifest, const std::string& part) {
  for (const auto& a : manifest.artifacts)
    if (a.part == part && a.format == "executorch" && a.float16_io) return true;
  return false;
}

void verify_parts(const Manifest& manifest) {
  std::map<std::string, std::string> owners;  // sha256 -> path
  std::vector<std::pair<std::string, FileRecord>> files;
  for (const auto& p : manifest.split->parts) {
    auto it = p.files.find("executorch");
    if (it == p.files.end()) continue;
    for (const auto* f : {&it->second.file, it->second.weights ? &*it->second.weights : nullptr})
      if (f != nullptr) {
        owners[f->sha256] = f->path;
        files.emplace_back(p.name, *f);
      }
  }
  for (const auto& [name, f] : files) {
    fs::path path = inside(manifest.folder, f.path);
    if (!fs::is_regular_file(path)) throw UserError("part " + name + ": " + path.string() + " is missing; export the folder again");
    std::string digest = sha256_path(path);
    if (digest == f.sha256) continue;
    if (owners.count(digest) && owners[digest] != f.path)  // another part's file (not this file under an edited record)
      throw UserError("part " + name + ": " + path.string() + " holds " + owners[digest] +
                      " (a different part), not the part its manifest lists; export the folder again");
    throw UserError("part " + name + ": " + path.string() +
                    " does not match its sha256 in the manifest (altered, or from another export); export the folder again");
  }
}

}  // namespace

Split open_split(const Manifest& manifest, bool verify) {
  const fs::path& folder = manifest.folder;
  if (!manifest.split) {
    // A command that works: --split blocks splits the video denoisers only.
    const std::set<std::string> splittable = {"video-dit-tiny", "video-dit-micro", "video-dit-large"};
    if (splittable.count(manifest.model))
      throw UserError(folder.string() + " was exported without --split blocks; streaming needs `tomobile export " +
                      manifest.model + " --split blocks --format executorch --out " + folder.string() + "`");
    throw UserError(folder.string() + " holds " + (manifest.model.empty() ? "a model" : manifest.model) +
                    ", exported without --split blocks; streaming runs a split video denoiser (video-dit-tiny, "
                    "video-dit-micro, video-dit-large), e.g. `tomobile export video-dit-micro --split blocks --format "
                    "executorch --out DIR`");
  }
  Split s;
  s.folder = folder;
  for (const auto& e : manifest.split->parts) {
    auto it = e.files.find("executorch");
    if (it == e.files.end())
      throw UserError(folder.string() + " has no executorch parts (part " + e.name + "); export with --format executorch");
    const SplitFile& rec = it->second;
    PartSpec p;
    p.name = e.name;
    p.pte = inside(folder, rec.file.path);
    if (rec.weights) p.ptd = inside(folder, rec.weights->path);
    p.method = rec.method.value_or("forward");
    p.size = rec.total_bytes;
    p.inputs = e.io.input_names();
    p.outputs = e.io.output_names();
    p.fp16 = is_fp16(manifest, e.name);
    s.parts[e.name] = p;
  }
  s.sequences = manifest.split->sequences;  // decoded: non-empty, naming parts that exist
  if (verify) verify_parts(manifest);
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

std::string mb(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.1f GB", n / 1e9);
  else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.1f MB", n / 1e6);
  else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.1f KB", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%d B", static_cast<int>(n));
  return buf;
}

PartSpec artifact_spec(const Manifest& manifest, const Artifact& a) {
  PartSpec p;
  p.name = a.part;
  p.pte = inside(manifest.folder, a.file.path);
  if (a.weights) p.ptd = inside(manifest.folder, a.weights->path);
  p.method = a.method.value_or("forward");
  p.size = a.bytes;
  p.fp16 = a.float16_io;
  p.inputs = manifest.part(a.part).input_names();
  p.outputs = manifest.part(a.part).output_names();
  return p;
}

std::optional<PartSpec> find_artifact(const Manifest& manifest, const std::string& part) {
  for (const auto& a : manifest.artifacts)
    if (a.part == part && a.format == "executorch") return artifact_spec(manifest, a);
  return std::nullopt;
}

std::vector<Case> read_cases(const Manifest& manifest, const std::string& part) {
  const PartIo& io = manifest.part(part);
  std::string file = "test_vectors/" + part + ".npz";
  std::vector<Case> cases;
  for (auto& [key, array] : read_npz(inside(manifest.folder, file))) {
    size_t a = key.find('.'), b = a == std::string::npos ? a : key.find('.', a + 1);
    if (b == std::string::npos) throw UserError(file + ": test vector " + key + " is not CASE.KIND.NAME");
    std::string name = key.substr(0, a), kind = key.substr(a + 1, b - a - 1);
    auto it = std::find_if(cases.begin(), cases.end(), [&](const Case& c) { return c.name == name; });
    if (it == cases.end()) it = cases.insert(cases.end(), Case{name, {}, {}});
    if (kind == "input") it->inputs.push_back(std::move(array));
    else it->outputs[key.substr(b + 1)] = std::move(array);
  }
  if (cases.empty()) throw UserError(file + " holds no case");
  for (const auto& c : cases) {
    if (c.inputs.size() != io.inputs.size())
      throw UserError(file + " case " + c.name + " has " + std::to_string(c.inputs.size()) + " inputs, the manifest lists " +
                      std::to_string(io.inputs.size()) + " for " + part);
    for (const auto& o : io.outputs)
      if (!c.outputs.count(o.name)) throw UserError(file + " case " + c.name + " has no output " + o.name + " (the manifest lists it)");
  }
  return cases;
}

}  // namespace tomobile
