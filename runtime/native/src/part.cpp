#include "part.h"

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/backend/options.h>

#include <cstdlib>
#include <cstring>

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

ScalarType scalar_type(const std::string& dtype) {
  if (dtype == "f4") return ScalarType::Float;
  if (dtype == "f2") return ScalarType::Half;
  if (dtype == "f8") return ScalarType::Double;
  if (dtype == "i8") return ScalarType::Long;
  if (dtype == "i4") return ScalarType::Int;
  if (dtype == "i2") return ScalarType::Short;
  if (dtype == "i1") return ScalarType::Char;
  if (dtype == "u1") return ScalarType::Byte;
  if (dtype == "b1") return ScalarType::Bool;
  throw UserError("dtype " + dtype + " has no ExecuTorch type");
}

std::string dtype_of(ScalarType t) {
  switch (t) {
    case ScalarType::Float: return "f4";
    case ScalarType::Half: return "f2";
    case ScalarType::Double: return "f8";
    case ScalarType::Long: return "i8";
    case ScalarType::Int: return "i4";
    case ScalarType::Short: return "i2";
    case ScalarType::Char: return "i1";
    case ScalarType::Byte: return "u1";
    case ScalarType::Bool: return "b1";
    default: throw std::runtime_error("output of ExecuTorch type " + std::to_string(static_cast<int>(t)) + " is not supported");
  }
}

// float32 <-> float16 with the runtime's own Half (round to nearest even, as numpy's astype).
Array cast(const Array& a, const std::string& dtype) {
  Array out = make_array(dtype, a.shape);
  for (size_t i = 0; i < a.count(); ++i) {
    if (dtype == "f2") {
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
  // Mmap: the program and its weights are mapped, not read into the heap (no mlock).
  module_ = ptd ? std::make_unique<Module>(pte.string(), ptd->string(), Module::LoadMode::Mmap)
                : std::make_unique<Module>(pte.string(), Module::LoadMode::Mmap);
  if (Error e = module_->load(); e != Error::Ok) throw std::runtime_error(failed("load", e));
  if (Error e = module_->load_method(method_); e != Error::Ok)
    throw std::runtime_error(failed(("load_method " + method_).c_str(), e));
  auto meta = module_->method_meta(method_);
  if (!meta.ok()) throw std::runtime_error(failed("method_meta", meta.error()));
  for (size_t i = 0; i < meta->num_inputs(); ++i) {
    auto info = meta->input_tensor_meta(i);
    if (!info.ok()) throw std::runtime_error("input " + std::to_string(i) + " is not a tensor");
    input_types_.push_back(static_cast<int>(info->scalar_type()));
  }
}

Part::~Part() = default;

std::vector<Array> Part::run(const std::vector<const Array*>& inputs) {
  if (inputs.size() != input_types_.size())
    throw std::runtime_error("the program takes " + std::to_string(input_types_.size()) + " inputs, got " +
                             std::to_string(inputs.size()));
  std::vector<Array> casts;  // kept alive while the method runs
  casts.reserve(inputs.size());
  std::vector<executorch::extension::TensorPtr> tensors;
  std::vector<executorch::runtime::EValue> values;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Array* a = inputs[i];
    auto want = static_cast<ScalarType>(input_types_[i]);
    if (want != scalar_type(a->dtype)) {
      bool floats = (a->dtype == "f4" || a->dtype == "f2") && (want == ScalarType::Float || want == ScalarType::Half);
      if (!floats) throw std::runtime_error("input " + std::to_string(i) + " is " + a->dtype + ", the program takes " + dtype_of(want));
      casts.push_back(cast(*a, want == ScalarType::Half ? "f2" : "f4"));
      a = &casts.back();
    }
    std::vector<executorch::aten::SizesType> sizes(a->shape.begin(), a->shape.end());
    tensors.push_back(executorch::extension::make_tensor_ptr(sizes, const_cast<uint8_t*>(a->bytes.data()), want));
    values.emplace_back(tensors.back());
  }
  auto result = module_->execute(method_, values);
  if (!result.ok()) throw std::runtime_error(failed("execute", result.error()));
  std::vector<Array> outputs;
  for (const auto& v : *result) {
    if (!v.isTensor()) throw std::runtime_error("an output is not a tensor");
    const auto& t = v.toTensor();
    Array out = make_array(dtype_of(t.scalar_type()), std::vector<int64_t>(t.sizes().begin(), t.sizes().end()));
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
