#include "manifest.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

namespace tomobile {

const char* const FORMATS[4] = {"onnx", "coreml", "executorch", "coreai"};

namespace {

// Reads one JSON document into checked structures; `fail` names the key path that is wrong.
struct Decoder {
  std::string where;  // "DIR/manifest.json"
  fs::path folder;

  [[noreturn]] void fail(const std::string& what) const { throw UserError(where + " is not a tomobile manifest: " + what); }

  const json& object(const json& j, const std::string& at) const {
    if (!j.is_object()) fail(at + " is a JSON " + j.type_name() + ", not an object");
    return j;
  }
  const json& array(const json& j, const std::string& at, bool nonempty) const {
    if (!j.is_array()) fail(at + " is a JSON " + std::string(j.type_name()) + ", not a list");
    if (nonempty && j.empty()) fail(at + " is empty");
    return j;
  }
  const json& field(const json& obj, const std::string& key, const std::string& at) const {
    if (!obj.contains(key)) fail(at + " has no '" + key + "'");
    return obj[key];
  }
  std::string string(const json& j, const std::string& at) const {
    if (!j.is_string()) fail(at + " is a JSON " + std::string(j.type_name()) + ", not a string");
    return j.get<std::string>();
  }
  std::optional<std::string> optional_string(const json& obj, const std::string& key, const std::string& at) const {
    if (!obj.contains(key)) return std::nullopt;
    return string(obj[key], at + "." + key);
  }
  int64_t count(const json& j, const std::string& at) const {
    bool ok = j.is_number_unsigned() ? j.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max())
                                     : j.is_number_integer() && j.get<int64_t>() >= 0;
    if (!ok) fail(at + " is " + j.dump().substr(0, 40) + ", not a non-negative integer");
    return j.get<int64_t>();
  }
  FileRecord record(const json& j, const std::string& at) const {
    object(j, at);
    FileRecord r{string(field(j, "path", at), at + ".path"), string(field(j, "sha256", at), at + ".sha256")};
    bool hex = r.sha256.size() == 64 && r.sha256.find_first_not_of("0123456789abcdef") == std::string::npos;
    if (!hex) fail(at + ".sha256 is not a sha256 (64 hex digits)");
    inside(folder, r.path);  // relative, no '..', no link out of the folder
    return r;
  }
  std::vector<IoSpec> io(const json& obj, const std::string& side, const std::string& at) const {
    std::vector<IoSpec> specs;
    const json& list = array(field(obj, side, at), at + "." + side, true);
    for (size_t i = 0; i < list.size(); ++i) {
      std::string here = at + "." + side + "[" + std::to_string(i) + "]";
      IoSpec s;
      s.name = string(field(object(list[i], here), "name", here), here + ".name");
      const json& shape = array(field(list[i], "shape", here), here + ".shape", false);
      for (size_t d = 0; d < shape.size(); ++d) s.shape.push_back(count(shape[d], here + ".shape[" + std::to_string(d) + "]"));
      specs.push_back(s);
    }
    return specs;
  }
  PartIo part_io(const json& obj, const std::string& at) const {
    object(obj, at);
    return {io(obj, "inputs", at), io(obj, "outputs", at)};
  }
  std::string format(const json& j, const std::string& at) const {
    std::string f = string(j, at);
    if (std::find(std::begin(FORMATS), std::end(FORMATS), f) == std::end(FORMATS))
      fail(at + " is '" + f + "'; formats: onnx, coreml, executorch, coreai");
    return f;
  }

  Artifact artifact(const json& j, const std::string& at, const Manifest& m) const {
    object(j, at);
    Artifact a;
    a.format = format(field(j, "format", at), at + ".format");
    a.part = string(field(j, "part", at), at + ".part");
    if (!m.parts.count(a.part)) fail(at + " names part '" + a.part + "', which 'parts' lacks");
    a.file = record(j, at);
    for (const char* key : {"weights", "external_data"})
      if (j.contains(key)) (std::string(key) == "weights" ? a.weights : a.external_data) = record(j[key], at + "." + key);
    a.method = optional_string(j, "method", at);
    a.precision = optional_string(j, "precision", at).value_or("fp32");
    if (a.precision != "fp32" && a.precision != "fp16" && a.precision != "int8")
      fail(at + ".precision is '" + a.precision + "'; precisions: fp32, fp16, int8");
    a.float16_io = optional_string(j, "float_io", at).value_or("float32") == "float16";
    if (j.contains("bytes")) a.bytes = count(j["bytes"], at + ".bytes");
    return a;
  }

  SplitEntry split(const json& j, const Manifest& m) const {
    object(j, "split");
    SplitEntry s;
    const json& parts = array(field(j, "parts", "split"), "split.parts", true);
    for (size_t i = 0; i < parts.size(); ++i) {
      std::string at = "split.parts[" + std::to_string(i) + "]";
      SplitPart p;
      p.name = string(field(object(parts[i], at), "name", at), at + ".name");
      if (std::any_of(s.parts.begin(), s.parts.end(), [&](const SplitPart& q) { return q.name == p.name; }))
        fail(at + " repeats the part name '" + p.name + "'");
      p.io = part_io(parts[i], at);
      const json& files = object(field(parts[i], "files", at), at + ".files");
      if (files.empty()) fail(at + ".files is empty");
      for (const auto& [fmt, rec] : files.items()) {
        std::string here = at + ".files." + fmt;
        format(json(fmt), here);
        SplitFile f;
        f.file = record(rec, here);
        if (rec.contains("weights")) f.weights = record(rec["weights"], here + ".weights");
        f.method = optional_string(rec, "method", here);
        f.total_bytes = count(field(rec, "total_bytes", here), here + ".total_bytes");
        p.files[fmt] = f;
      }
      s.parts.push_back(p);
    }
    const json& sequences = object(field(j, "sequences", "split"), "split.sequences");
    if (sequences.empty()) fail("split.sequences is empty");
    for (const auto& [variant, seq] : sequences.items()) {
      std::string at = "split.sequences." + variant;
      if (!m.parts.count(variant)) fail(at + ": variant '" + variant + "' is not a part in 'parts'");
      std::vector<std::string> names;
      for (const auto& n : array(seq, at, true)) names.push_back(string(n, at + "[]"));
      chain(s, m.parts.at(variant), names, at);
      s.sequences.emplace_back(variant, names);
    }
    return s;
  }

  // Every part of a sequence exists and finds each input among the variant's inputs or an
  // earlier part's outputs.
  void chain(const SplitEntry& s, const PartIo& variant, const std::vector<std::string>& names, const std::string& at) const {
    std::set<std::string> given;
    for (const auto& i : variant.inputs) given.insert(i.name);
    for (const auto& n : names) {
      auto it = std::find_if(s.parts.begin(), s.parts.end(), [&](const SplitPart& p) { return p.name == n; });
      if (it == s.parts.end()) fail(at + " names part '" + n + "', which split.parts lacks");
      for (const auto& i : it->io.inputs)
        if (!given.count(i.name)) fail(at + ": part '" + n + "' needs '" + i.name + "', which no input or earlier part gives");
      for (const auto& o : it->io.outputs) given.insert(o.name);
    }
  }

  Manifest manifest(const json& j) const {
    Manifest m;
    m.folder = folder;
    if (!j.is_object()) fail(std::string("it holds a JSON ") + j.type_name() + ", not an object");
    if (!j.contains("tomobile_manifest")) fail("no 'tomobile_manifest' key");
    if (j.contains("model")) m.model = string(j["model"], "model");
    const json& parts = object(field(j, "parts", "the manifest"), "parts");
    if (parts.empty()) fail("'parts' is empty");
    for (const auto& [name, p] : parts.items()) m.parts[name] = part_io(p, "parts." + name);
    const json& artifacts = array(field(j, "artifacts", "the manifest"), "artifacts", true);
    for (size_t i = 0; i < artifacts.size(); ++i) m.artifacts.push_back(artifact(artifacts[i], "artifacts[" + std::to_string(i) + "]", m));
    if (j.contains("files"))
      for (const auto& [rel, digest] : object(j["files"], "files").items())
        m.files.push_back(record(json{{"path", rel}, {"sha256", digest}}, "files." + rel));
    if (j.contains("test_vectors"))
      for (const auto& [stem, digest] : object(j["test_vectors"], "test_vectors").items())
        m.test_vectors[stem] = record(json{{"path", "test_vectors/" + stem + ".npz"}, {"sha256", digest}}, "test_vectors." + stem).sha256;
    for (const auto& [name, p] : m.parts)
      if (!m.test_vectors.count(name)) fail("part '" + name + "' has no 'test_vectors' entry");
    if (j.contains("split")) m.split = split(j["split"], m);
    return m;
  }
};

}  // namespace

std::vector<std::string> PartIo::input_names() const {
  std::vector<std::string> names;
  for (const auto& i : inputs) names.push_back(i.name);
  return names;
}

std::vector<std::string> PartIo::output_names() const {
  std::vector<std::string> names;
  for (const auto& o : outputs) names.push_back(o.name);
  return names;
}

std::string Artifact::label() const { return method ? file.path + ":" + *method : file.path; }

const SplitPart& SplitEntry::part(const std::string& name) const {
  for (const auto& p : parts)
    if (p.name == name) return p;
  throw UserError("the split has no part " + name);  // unreachable after decoding: sequences name parts that exist
}

const PartIo& Manifest::part(const std::string& name) const {
  auto it = parts.find(name);
  if (it == parts.end()) throw UserError((folder / "manifest.json").string() + " has no part " + name);
  return it->second;
}

std::vector<FileRecord> Manifest::records() const {
  std::vector<FileRecord> all;
  for (const auto& a : artifacts) {
    all.push_back(a.file);
    for (const auto* r : {&a.weights, &a.external_data})
      if (*r) all.push_back(**r);
  }
  all.insert(all.end(), files.begin(), files.end());
  for (const auto& [stem, digest] : test_vectors) all.push_back({"test_vectors/" + stem + ".npz", digest});
  if (split)
    for (const auto& p : split->parts)
      for (const auto& [fmt, f] : p.files) {
        all.push_back(f.file);
        if (f.weights) all.push_back(*f.weights);
      }
  return all;
}

bool Manifest::has_executorch() const {
  for (const auto& a : artifacts)
    if (a.format == "executorch") return true;
  if (split)
    for (const auto& p : split->parts)
      if (p.files.count("executorch")) return true;
  return false;
}

std::vector<std::string> Manifest::formats() const {
  std::vector<std::string> out;
  for (const auto& a : artifacts)
    if (std::find(out.begin(), out.end(), a.format) == out.end()) out.push_back(a.format);
  return out;
}

Manifest decode_manifest(const std::string& text, const fs::path& folder, const std::string& where) {
  // nlohmann's reader takes a NUL byte for the end of the input: refuse one before it can hide
  // what follows it (JSON text holds none; a string holds it escaped).
  if (size_t nul = text.find('\0'); nul != std::string::npos)
    throw UserError(where + " is not valid JSON: a NUL byte at offset " + std::to_string(nul));
  json j = json::parse(text, nullptr, false);  // strict: anything after the one value is refused
  if (j.is_discarded()) throw UserError(where + " is not valid JSON");
  return Decoder{where, folder}.manifest(j);
}

Manifest load_manifest(const fs::path& folder) {
  fs::path path = folder / "manifest.json";
  if (!fs::is_regular_file(path)) throw UserError(folder.string() + " has no manifest.json: not a tomobile export folder");
  std::ifstream f(path, std::ios::binary);
  if (!f.is_open()) throw UserError(path.string() + " cannot be read");
  std::stringstream text;
  text << f.rdbuf();
  return decode_manifest(text.str(), folder, path.string());
}

void verify_checksums(const Manifest& manifest) {
  std::map<std::string, std::string> computed;  // path -> sha256: a file listed twice is hashed once
  for (const auto& r : manifest.records()) {
    fs::path path = inside(manifest.folder, r.path);
    if (!fs::exists(path)) throw UserError(path.string() + " is listed in the manifest but missing");
    auto [it, fresh] = computed.try_emplace(r.path);
    if (fresh) it->second = sha256_path(path);
    if (it->second != r.sha256)
      throw UserError(path.string() + " does not match its sha256 in the manifest (corrupt or changed)");
  }
}

}  // namespace tomobile
