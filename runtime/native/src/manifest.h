// manifest.json decoded once into checked structures: every key the engine reads has its type,
// every required one is there, and every name that refers to another entry (an artifact's part,
// a split sequence's parts, a part's inputs) refers to one that exists. After decode_manifest no
// line indexes JSON, and none can reach past what the manifest holds. The schema is the one
// runtime/manifest.py writes (docs/contract.md).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "folder.h"

namespace tomobile {

struct FileRecord {
  std::string path;    // relative to the folder, inside it
  std::string sha256;  // 64 lowercase hex digits
};

struct IoSpec {
  std::string name;
  std::vector<int64_t> shape;
};

struct PartIo {
  std::vector<IoSpec> inputs, outputs;  // neither empty
  std::vector<std::string> input_names() const;
  std::vector<std::string> output_names() const;
};

struct Artifact {
  std::string format;  // one of FORMATS
  std::string part;    // a key of Manifest::parts
  FileRecord file;
  std::optional<FileRecord> weights, external_data;  // files beside the graph
  std::optional<std::string> method;  // its method in a program that several parts share
  std::string precision = "fp32";     // fp32, fp16 or int8
  bool float16_io = false;
  int64_t bytes = 0;
  std::string label() const;  // "path", or "path:method" (as `tomobile validate` labels it)
};

struct SplitFile {  // one format's files of a split part
  FileRecord file;
  std::optional<FileRecord> weights;
  std::optional<std::string> method;
  int64_t total_bytes = 0;  // program + weights: what a memory budget counts
};

struct SplitPart {
  std::string name;
  PartIo io;
  std::map<std::string, SplitFile> files;  // by format
};

struct SplitEntry {
  std::vector<SplitPart> parts;
  // variant -> its parts in run order; never empty, every name a part above, every variant a key
  // of Manifest::parts (its monolithic denoiser and test vectors), every part input given by the
  // variant's inputs or an earlier part's outputs.
  std::vector<std::pair<std::string, std::vector<std::string>>> sequences;
  const SplitPart& part(const std::string& name) const;
};

struct Manifest {
  fs::path folder;
  std::string model;
  std::map<std::string, PartIo> parts;
  std::vector<Artifact> artifacts;
  std::vector<FileRecord> files;                    // "files": configs, tokenizers
  std::map<std::string, std::string> test_vectors;  // part -> sha256 of test_vectors/PART.npz
  std::optional<SplitEntry> split;

  const PartIo& part(const std::string& name) const;
  // Every file record the manifest holds (artifacts, their weights, files, test vectors, split
  // parts' files of every format), in the manifest's order: what a checksum pass verifies.
  std::vector<FileRecord> records() const;
  bool has_executorch() const;  // an ExecuTorch program among the artifacts or split parts
  std::vector<std::string> formats() const;  // the formats the artifacts list, in order, once each
};

extern const char* const FORMATS[4];  // onnx, coreml, executorch, coreai

// folder/manifest.json read whole and decoded (UserError naming the first thing wrong).
Manifest load_manifest(const fs::path& folder);
// The same check on JSON text: `where` names it in messages. Refuses text that is not exactly
// one JSON value (a NUL byte or anything after the value included).
Manifest decode_manifest(const std::string& text, const fs::path& folder, const std::string& where);

// Every file record (records()) present and equal to its sha256, before anything runs; a record
// listed twice with two digests fails on one of them.
void verify_checksums(const Manifest& manifest);

}  // namespace tomobile
