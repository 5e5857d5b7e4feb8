#include "stream.h"

#include <chrono>
#include <cstring>

namespace tomobile {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Loaded load_timed(const PartSpec& spec) {
  Loaded l;
  l.start = now_s();
  l.part = std::make_unique<Part>(spec.pte, spec.ptd, spec.method);
  l.end = now_s();
  l.seconds = l.end - l.start;
  return l;
}

Array as_float32(const Array& a) {
  if (a.dtype == Dtype::F32) return a;
  Array out = make_array(Dtype::F32, a.shape);
  for (size_t i = 0; i < a.count(); ++i) {
    float f = static_cast<float>(a.at(i));
    std::memcpy(out.bytes.data() + 4 * i, &f, 4);
  }
  return out;
}

Loader::Loader() {
  thread_ = std::thread([this] {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return stop_ || job_; });
        if (stop_ && !job_) return;
        job = std::move(job_);
        job_ = nullptr;
      }
      job();
    }
  });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  ready_.notify_one();
  thread_.join();
}

std::future<Loaded> Loader::submit(const PartSpec& spec) {
  auto promise = std::make_shared<std::promise<Loaded>>();
  auto future = promise->get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = [promise, spec] {
      try {
        promise->set_value(load_timed(spec));
      } catch (...) {
        promise->set_exception(std::current_exception());
      }
    };
  }
  ready_.notify_one();
  return future;
}

Streamer::Streamer(const Split& split, int64_t budget, bool prefetch, MemoryProbe* probe)
    : split_(split), budget_(budget), probe_(probe), loader_(prefetch ? std::make_unique<Loader>() : nullptr) {
  const PartSpec& largest = split.largest();
  if (budget < largest.size)
    throw UserError("memory budget " + mb(static_cast<double>(budget)) + " is below the largest part, " + largest.name +
                    " (" + mb(static_cast<double>(largest.size)) + "); give at least " + mb(static_cast<double>(largest.size)));
}

Streamer::~Streamer() {
  CallStats ignored;
  for (auto& [name, future] : loading_)
    if (future.valid()) future.wait();  // a load in flight finishes before the loader goes
  loading_.clear();
  loaded_.clear();
  loader_.reset();
  trim();
}

const std::set<std::string>& Streamer::pinned(const std::string& variant) {
  if (!pinned_.count(variant)) {
    std::vector<std::pair<std::string, int64_t>> sizes;
    for (const auto& n : split_.sequence(variant))
      if (std::none_of(sizes.begin(), sizes.end(), [&](const auto& s) { return s.first == n; }))
        sizes.emplace_back(n, split_.parts.at(n).size);
    pinned_[variant] = plan_pinned(sizes, budget_, loader_ != nullptr);
  }
  return pinned_[variant];
}

int64_t Streamer::resident_bytes() const {
  int64_t total = 0;
  for (const auto& [n, p] : loaded_) total += split_.parts.at(n).size;
  for (const auto& [n, f] : loading_) total += split_.parts.at(n).size;
  return total;
}

Array Streamer::operator()(const std::string& variant, const Env& inputs) {
  const auto& seq = split_.sequence(variant);
  const auto& keep = pinned(variant);
  CallStats stats;
  stats.variant = variant;
  if (probe_) probe_->start_window();
  double start = now_s();
  std::vector<std::string> others;
  for (const auto& [n, p] : loaded_)
    if (std::find(seq.begin(), seq.end(), n) == seq.end()) others.push_back(n);
  for (const auto& [n, f] : loading_)
    if (std::find(seq.begin(), seq.end(), n) == seq.end()) others.push_back(n);
  for (const auto& n : others) release(n, stats);  // another variant's parts
  stats.resident_max = resident_bytes();            // what stays from the last call
  Env env = inputs;
  for (size_t i = 0; i < seq.size(); ++i) {
    const PartSpec& spec = split_.parts.at(seq[i]);
    Part& part = acquire(seq[i], stats);
    if (loader_) prefetch(seq, i, stats);
    std::vector<const Array*> args;
    for (const auto& n : spec.inputs) {
      auto it = env.find(n);
      if (it == env.end()) throw UserError("part " + spec.name + " needs " + n + ", which no input or earlier part gives");
      args.push_back(&it->second);
    }
    if (probe_) probe_->sample();
    double t = now_s();
    auto outs = part.run(args);
    stats.run_s += now_s() - t;
    if (outs.size() != spec.outputs.size())
      throw UserError("part " + spec.name + " returns " + std::to_string(outs.size()) + " outputs, the manifest lists " +
                      std::to_string(spec.outputs.size()) + " (edited, or from another export)");
    for (size_t k = 0; k < outs.size(); ++k) env[spec.outputs[k]] = std::move(outs[k]);
    if (probe_) probe_->sample();
    stats.parts_run += 1;
    if (!keep.count(seq[i])) release(seq[i], stats);
  }
  stats.latency_s = now_s() - start;
  if (probe_) stats.peak = probe_->end_window();
  stats_.push_back(stats);
  return as_float32(env.at(split_.parts.at(seq.back()).outputs.at(0)));  // decoded: every part has outputs
}

// The next part after position i (wrapping to the next call) that is neither loaded nor loading;
// one load at a time; only when it fits the budget beside what is resident.
void Streamer::prefetch(const std::vector<std::string>& seq, size_t i, CallStats& stats) {
  for (size_t k = 1; k <= seq.size(); ++k) {
    const std::string& name = seq[(i + k) % seq.size()];
    if (loading_.count(name)) return;
    if (loaded_.count(name)) continue;
    if (resident_bytes() + split_.parts.at(name).size > budget_) return;
    loading_[name] = loader_->submit(split_.parts.at(name));
    stats.resident_max = std::max(stats.resident_max, resident_bytes());
    return;
  }
}

Part& Streamer::acquire(const std::string& name, CallStats& stats) {
  if (auto it = loaded_.find(name); it != loaded_.end()) return *it->second;
  Loaded l;
  if (auto it = loading_.find(name); it != loading_.end()) {
    std::future<Loaded> pending = std::move(it->second);
    loading_.erase(it);  // before get(): a failed load rethrows here and must leave no entry behind
    double t = now_s();
    l = pending.get();
    double waited = now_s() - t;
    stats.waited_s += waited;
    stats.hidden_s += std::max(0.0, l.seconds - waited);
    stats.prefetched += 1;
  } else {
    std::vector<std::string> stale;
    for (const auto& [n, f] : loading_) stale.push_back(n);
    for (const auto& n : stale) release(n, stats);  // a load we no longer need: let it finish, drop it
    int64_t size = split_.parts.at(name).size;
    if (resident_bytes() + size > budget_)
      throw std::runtime_error("part " + name + " (" + mb(static_cast<double>(size)) + ") does not fit beside " +
                               mb(static_cast<double>(resident_bytes())) + " resident under " + mb(static_cast<double>(budget_)));
    l = load_timed(split_.parts.at(name));
    stats.waited_s += l.seconds;
  }
  stats.load_s += l.seconds;
  stats.parts_loaded += 1;
  Part& part = *(loaded_[name] = std::move(l.part));
  stats.resident_max = std::max(stats.resident_max, resident_bytes());
  if (probe_) probe_->sample();
  return part;
}

void Streamer::release(const std::string& name, CallStats& stats) {
  if (auto it = loading_.find(name); it != loading_.end()) {
    std::future<Loaded> pending = std::move(it->second);
    loading_.erase(it);
    Loaded l = pending.get();
    stats.load_s += l.seconds;
    stats.parts_loaded += 1;
    stats.prefetched += 1;
    stats.hidden_s += l.seconds;
  } else {
    loaded_.erase(name);  // the last owner: the runtime frees the program, its mapping and packed weights
  }
  if (probe_) probe_->sample();
  trim();
}

}  // namespace tomobile
