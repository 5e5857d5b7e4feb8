#include "part.h"

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/backend/options.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>

#include "folder.h"

// The wheel ships libexecutorch_threadpool.so without threadpool.h; these two members of its
// ThreadPool class (non-virtual, called through the pointer get_threadpool() returns) are all
// the engine uses.
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

namespace tomobile {

using executorch::aten::ScalarType;
using executorch::extension::module::Module;
using executorch::runtime::Error;

namespace {

ScalarType scalar_type(Dtype dtype) {
  switch (dtype) {
    case Dtype::F32: return ScalarType::Float;
    case Dtype::F16: return ScalarType::Half;
    case Dtype::F64: return ScalarType::Double;
    case Dtype::I64: return ScalarType::Long;
    case Dtype::I32: return ScalarType::Int;
    case Dtype::I16: return ScalarType::Short;
    case Dtype::I8: return ScalarType::Char;
    case Dtype::U8: return ScalarType::Byte;
    case Dtype::Bool: return ScalarType::Bool;
  }
  return ScalarType::Undefined;
}

std::optional<Dtype> dtype_of(ScalarType t) {
  switch (t) {
    case ScalarType::Float: return Dtype::F32;
    case ScalarType::Half: return Dtype::F16;
    case ScalarType::Double: return Dtype::F64;
    case ScalarType::Long: return Dtype::I64;
    case ScalarType::Int: return Dtype::I32;
    case ScalarType::Short: return Dtype::I16;
    case ScalarType::Char: return Dtype::I8;
    case ScalarType::Byte: return Dtype::U8;
    case ScalarType::Bool: return Dtype::Bool;
    default: return std::nullopt;
  }
}

std::string type_name(ScalarType t) {
  auto d = dtype_of(t);
  return d ? numpy_code(*d) : "ExecuTorch type " + std::to_string(static_cast<int>(t));
}

std::string shape_text(const std::vector<int64_t>& shape) {
  Array a;
  a.shape = shape;
  return a.shape_text();
}

// float32 <-> float16 with the runtime's own Half (round to nearest even, as numpy's astype).
Array cast(const Array& a, Dtype dtype) {
  Array out = make_array(dtype, a.shape);
  for (size_t i = 0; i < a.count(); ++i) {
    if (dtype == Dtype::F16) {
      executorch::aten::Half h(static_cast<float>(a.at(i)));
      std::memcpy(out.bytes.data() + 2 * i, &h, 2);
    } else {
      float f = static_cast<float>(a.at(i));
      std::memcpy(out.bytes.data() + 4 * i, &f, 4);
    }
  }
  return out;
}

std::string failed(const char* what, Error e) {
  return std::string(what) + " failed: " + executorch::runtime::to_string(e) + " (error 0x" +
         [](int v) { char b[8]; std::snprintf(b, sizeof b, "%x", v); return std::string(b); }(static_cast<int>(e)) + ")";
}

}  // namespace

bool enable_weight_cache() {
  const char* env = std::getenv("TOMOBILE_XNNPACK_WEIGHT_CACHE");
  if (env != nullptr && std::string(env) == "0") return false;
  executorch::runtime::BackendOptions<1> options;
  if (options.set_option("weight_cache_enabled", true) != Error::Ok) return false;
  return executorch::runtime::set_option("XnnpackBackend", options.view()) == Error::Ok;
}

Part::Part(const std::filesystem::path& pte, const std::optional<std::filesystem::path>& ptd,
           const std::string& method)
    : method_(method) {
  std::string what = pte.filename().string() + (method == "forward" ? "" : ":" + method);
  // Mmap: the program and its weights are mapped, not read into the heap (no mlock).
  module_ = ptd ? std::make_unique<Module>(pte.string(), ptd->string(), Module::LoadMode::Mmap)
                : std::make_unique<Module>(pte.string(), Module::LoadMode::Mmap);
  // A program that does not load is the folder's fault (not a .pte, or from another runtime): bad input.
  if (Error e = module_->load(); e != Error::Ok) throw UserError(what + ": " + failed("load", e));
  auto names = module_->method_names();
  if (!names.ok()) throw UserError(what + ": " + failed("method_names", names.error()));
  if (!names->count(method_)) {
    std::string list;
    for (const auto& n : std::set<std::string>(names->begin(), names->end())) list += (list.empty() ? "" : ", ") + n;
    throw UserError(pte.filename().string() + " has no method '" + method_ + "' (its methods: " + list +
                    "); the manifest names a method the program lacks");
  }
  if (Error e = module_->load_method(method_); e != Error::Ok) throw UserError(what + ": " + failed("load_method", e));
  auto meta = module_->method_meta(method_);
  if (!meta.ok()) throw UserError(what + ": " + failed("method_meta", meta.error()));
  for (size_t i = 0; i < meta->num_inputs(); ++i) {
    auto info = meta->input_tensor_meta(i);
    if (!info.ok()) throw UserError(what + ": input " + std::to_string(i) + " is not a tensor");
    input_types_.push_back(static_cast<int>(info->scalar_type()));
    input_shapes_.emplace_back(info->sizes().begin(), info->sizes().end());
  }
  what_ = what;
}

Part::~Part() = default;

std::vector<Array> Part::run(const std::vector<const Array*>& inputs) {
  // What the folder gives must be what the program takes: a count, dtype or shape that differs is
  // an edited manifest or test vectors (bad input), never a call into the runtime.
  if (inputs.size() != input_types_.size())
    throw UserError(what_ + " takes " + std::to_string(input_types_.size()) + " inputs, the folder gives " +
                    std::to_string(inputs.size()) + " (manifest or test vectors edited, or from another export)");
  std::vector<Array> casts;  // kept alive while the method runs
  casts.reserve(inputs.size());
  std::vector<executorch::extension::TensorPtr> tensors;
  std::vector<executorch::runtime::EValue> values;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Array* a = inputs[i];
    auto want = static_cast<ScalarType>(input_types_[i]);
    if (a->shape != input_shapes_[i])
      throw UserError(what_ + " input " + std::to_string(i) + " is " + a->shape_text() + ", the program takes " +
                      shape_text(input_shapes_[i]) + " (manifest or test vectors edited, or from another export)");
    if (want != scalar_type(a->dtype)) {
      bool floats = (a->dtype == Dtype::F32 || a->dtype == Dtype::F16) && (want == ScalarType::Float || want == ScalarType::Half);
      if (!floats)
        throw UserError(what_ + " input " + std::to_string(i) + " is " + numpy_code(a->dtype) + ", the program takes " +
                        type_name(want));
      casts.push_back(cast(*a, want == ScalarType::Half ? Dtype::F16 : Dtype::F32));
      a = &casts.back();
    }
    std::vector<executorch::aten::SizesType> sizes(a->shape.begin(), a->shape.end());
    tensors.push_back(executorch::extension::make_tensor_ptr(sizes, const_cast<uint8_t*>(a->bytes.data()), want));
    values.emplace_back(tensors.back());
  }
  auto result = module_->execute(method_, values);
  if (!result.ok()) throw std::runtime_error(what_ + ": " + failed("execute", result.error()));
  std::vector<Array> outputs;
  for (const auto& v : *result) {
    if (!v.isTensor()) throw UserError(what_ + ": an output is not a tensor");
    const auto& t = v.toTensor();
    auto dtype = dtype_of(t.scalar_type());
    if (!dtype) throw UserError(what_ + ": an output of " + type_name(t.scalar_type()) + " is not supported");
    Array out = make_array(*dtype, std::vector<int64_t>(t.sizes().begin(), t.sizes().end()));
    std::memcpy(out.bytes.data(), t.const_data_ptr(), out.bytes.size());  // the method's buffers are reused next run
    outputs.push_back(std::move(out));
  }
  return outputs;
}

size_t set_threads(unsigned n) {
  auto* pool = executorch::extension::threadpool::get_threadpool();
  if (pool == nullptr) return 1;
  if (n > 0) pool->_unsafe_reset_threadpool(n);
  return pool->get_thread_count();
}

}  // namespace tomobile
