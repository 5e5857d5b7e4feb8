// ctest for what reads tomobile-native's input without ExecuTorch (CMakeLists.txt registers it):
//   numbers TABLE   every case of tests/number_cases.json, the table the Python parser is tested on
//   manifest        a valid manifest decodes; every key of it deleted or given another JSON type
//                   decodes or is refused with a UserError, never another exception
//   guard           main's last resort: a UserError is exit 2, any other exception exit 1, one line each
// Prints one line per failure and a summary line; exit 0 only when every check passed.
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>

#include "guard.h"
#include "manifest.h"
#include "numbers.h"

namespace {

using tomobile::json;
using tomobile::UserError;

int failures = 0, checks = 0;

void check(bool ok, const std::string& what) {
  ++checks;
  if (!ok) {
    ++failures;
    std::cout << "FAIL " << what << "\n";
  }
}

std::string expand(std::string text) {
  const std::string key = "{max_threads}", plus = "{max_threads+1}";
  if (text == plus) return std::to_string(tomobile::max_threads() + 1);
  if (text == key) return std::to_string(tomobile::max_threads());
  return text;
}

int numbers(const std::string& table_path) {
  std::ifstream f(table_path);
  if (!f) {
    std::cout << "FAIL cannot read " << table_path << "\n";
    return 1;
  }
  json table = json::parse(f);
  for (const auto& c : table["cases"]) {
    std::string option = c["option"], text = expand(c["text"]);
    const json& rule = table["options"][option];
    std::string label = option + " '" + text + "'";
    std::optional<int64_t> got;
    std::string error;
    try {
      if (rule["kind"] == "size") got = tomobile::parse_size(text, option);
      else got = tomobile::parse_int(text, option, rule["low"].get<int64_t>(),
                                      rule["high"].is_string() ? std::stoll(expand(rule["high"])) : rule["high"].get<int64_t>());
    } catch (const UserError& err) {
      error = err.what();
    }
    if (c["value"].is_null()) {
      check(!got.has_value(), label + " is refused (got " + (got ? std::to_string(*got) : "") + ")");
      check(error.find('\n') == std::string::npos && error.rfind(option + " ", 0) == 0,
            label + ": one line naming the option: " + error);
    } else {
      int64_t want = c["value"].is_string() ? std::stoll(expand(c["value"])) : c["value"].get<int64_t>();
      check(got == want, label + " = " + std::to_string(want) + " (got " + (got ? std::to_string(*got) : error) + ")");
    }
  }
  std::cout << checks << " checks, " << failures << " failed (" << table["cases"].size() << " number cases)\n";
  return failures ? 1 : 0;
}

// The smallest manifest the engine reads: one part, one artifact, a split with one sequence.
const char* VALID = R"({
  "tomobile_manifest": 1, "model": "video-dit-micro",
  "parts": {"den": {"inputs": [{"name": "x", "shape": [1, 2]}, {"name": "t", "shape": [1]}],
                    "outputs": [{"name": "velocity", "shape": [1, 2]}]}},
  "artifacts": [{"format": "executorch", "part": "den", "path": "den.pte", "bytes": 10,
                 "sha256": "0000000000000000000000000000000000000000000000000000000000000000",
                 "weights": {"path": "den.ptd", "sha256": "1111111111111111111111111111111111111111111111111111111111111111"},
                 "method": "den", "precision": "fp32", "float_io": "float32"}],
  "files": {"config.json": "2222222222222222222222222222222222222222222222222222222222222222"},
  "test_vectors": {"den": "3333333333333333333333333333333333333333333333333333333333333333"},
  "split": {"kind": "blocks", "sequences": {"den": ["a", "b"]},
            "parts": [{"name": "a", "inputs": [{"name": "x", "shape": [1, 2]}], "outputs": [{"name": "h", "shape": [2]}],
                       "files": {"executorch": {"path": "a.pte", "total_bytes": 5, "method": "a",
                                                "sha256": "4444444444444444444444444444444444444444444444444444444444444444"}}},
                      {"name": "b", "inputs": [{"name": "h", "shape": [2]}, {"name": "t", "shape": [1]}],
                       "outputs": [{"name": "velocity", "shape": [1, 2]}],
                       "files": {"executorch": {"path": "b.pte", "total_bytes": 5,
                                                "sha256": "5555555555555555555555555555555555555555555555555555555555555555",
                                                "weights": {"path": "b.ptd", "sha256": "6666666666666666666666666666666666666666666666666666666666666666"}}}}]}
})";

// Decoding `doc` ends in a Manifest or a one-line UserError; anything else is a failure.
bool decodes(const json& doc, const std::string& what, std::string* error = nullptr) {
  try {
    tomobile::decode_manifest(doc.dump(), "/tmp/tomobile-ctest", "manifest.json");
    return true;
  } catch (const UserError& err) {
    check(std::string(err.what()).find('\n') == std::string::npos, what + ": one line");
    if (error) *error = err.what();
    return false;
  } catch (const std::exception& err) {
    check(false, what + ": " + err.what() + " escaped as a non-UserError");
    return false;
  }
}

// Every node of `doc` deleted or replaced by each value of another type.
void mutate_all(const json& doc, const json& node, const json::json_pointer& at) {
  const json others[] = {nullptr, 1, -1, 1.5, "abc", json::array(), json::object(), true, 18446744073709551615u};
  for (const auto& other : others) {
    json edited = doc;
    edited[at] = other;
    decodes(edited, at.to_string() + " = " + other.dump());
  }
  if (!at.empty()) {
    json edited = doc;
    json& parent = edited[at.parent_pointer()];
    if (parent.is_object()) parent.erase(at.back());
    else parent.erase(parent.begin() + std::stoi(at.back()));
    decodes(edited, at.to_string() + " deleted");
  }
  if (node.is_object())
    for (const auto& [k, v] : node.items()) mutate_all(doc, v, at / k);
  if (node.is_array())
    for (size_t i = 0; i < node.size(); ++i) mutate_all(doc, node[i], at / i);
}

int manifest() {
  json valid = json::parse(VALID);
  check(decodes(valid, "the valid manifest"), "the valid manifest decodes");
  struct Case { std::function<void(json&)> edit; const char* says; };
  const Case refused[] = {
      {[](json& m) { m["split"]["sequences"]["den"] = json::array(); }, "split.sequences.den is empty"},
      {[](json& m) { m["split"]["sequences"] = json::object(); }, "split.sequences is empty"},
      {[](json& m) { m["split"]["sequences"]["den"][1] = "missing"; }, "names part 'missing', which split.parts lacks"},
      {[](json& m) { m["split"]["sequences"]["other"] = {"a"}; }, "variant 'other' is not a part in 'parts'"},
      {[](json& m) { m["split"]["sequences"]["den"] = {"b", "a"}; }, "part 'b' needs 'h', which no input or earlier part gives"},
      {[](json& m) { m["split"]["parts"][0]["files"]["executorch"]["total_bytes"] = "abc"; }, "total_bytes is \"abc\", not a non-negative integer"},
      {[](json& m) { m["split"]["parts"][0]["files"]["executorch"]["sha256"] = std::string(65, 'a'); }, "is not a sha256 (64 hex digits)"},
      {[](json& m) { m["artifacts"][0]["part"] = "nope"; }, "names part 'nope', which 'parts' lacks"},
      {[](json& m) { m["artifacts"][0]["path"] = "../x.pte"; }, "paths must be relative and inside the folder"},
      {[](json& m) { m["artifacts"][0]["format"] = "tflite"; }, "formats: onnx, coreml, executorch, coreai"},
      {[](json& m) { m["parts"]["den"]["inputs"] = json::array(); }, "parts.den.inputs is empty"},
      {[](json& m) { m["test_vectors"].erase("den"); }, "part 'den' has no 'test_vectors' entry"},
  };
  for (const auto& c : refused) {
    json edited = valid;
    c.edit(edited);
    std::string error;
    check(!decodes(edited, c.says, &error) && error.find(c.says) != std::string::npos, std::string(c.says) + " (got: " + error + ")");
  }
  std::string error;
  try {
    tomobile::decode_manifest(valid.dump() + " {}", "/tmp/t", "m.json");
  } catch (const UserError& err) {
    error = err.what();
  }
  check(error.find("is not valid JSON") != std::string::npos, "a second value after the manifest is refused");
  error.clear();
  try {
    tomobile::decode_manifest(valid.dump() + std::string(1, '\0') + "garbage", "/tmp/t", "m.json");
  } catch (const UserError& err) {
    error = err.what();
  }
  check(error.find("NUL byte") != std::string::npos, "a NUL byte and bytes after the manifest are refused");
  mutate_all(valid, valid, json::json_pointer());
  std::cout << checks << " checks, " << failures << " failed (manifest decoding)\n";
  return failures ? 1 : 0;
}

int guard() {
  struct Case { std::function<int()> body; int code; const char* says; };
  const Case cases[] = {
      {[] { return 0; }, 0, ""},
      {[]() -> int { throw UserError("bad input\nsecond line"); }, 2, "tomobile-native: error: bad input\n"},
      {[]() -> int { throw std::runtime_error("map::at"); }, 1, "tomobile-native: internal error (a bug, please report it): map::at\n"},
      {[]() -> int { throw std::out_of_range("vector::_M_range_check: n >= size"); }, 1, "_M_range_check: n >= size\n"},
      {[]() -> int { throw 42; }, 1, "an exception of unknown type\n"},
  };
  for (const auto& c : cases) {
    std::ostringstream err;
    int code = tomobile::guarded(c.body, err);
    std::string text = err.str();
    bool one_line = text.empty() || text.find('\n') == text.size() - 1;
    check(code == c.code && one_line && text.find(c.says) != std::string::npos,
          "guarded: exit " + std::to_string(code) + ", said '" + text + "'; want exit " + std::to_string(c.code));
  }
  std::cout << checks << " checks, " << failures << " failed (main's last resort)\n";
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string what = argc > 1 ? argv[1] : "";
  if (what == "numbers" && argc == 3) return numbers(argv[2]);
  if (what == "manifest") return manifest();
  if (what == "guard") return guard();
  std::cerr << "usage: tomobile-native-tests numbers TABLE | manifest | guard\n";
  return 2;
}
