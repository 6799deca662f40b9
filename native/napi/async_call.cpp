// attentionAsync: a call runs on a libuv worker thread and settles a promise.
//
// Memory. JS may detach (transfer) or shrink an ordinary ArrayBuffer while a call runs, and
// its memory may then be freed, so what a call reads from ordinary ArrayBuffers is copied
// into memory the call owns before it starts, and its outputs are copied back when it
// settles. Typed arrays whose memory overlaps are copied as one region, so arguments that
// alias each other (q = big.subarray(0, D) and k = big) keep their relation in the copy.
// SharedArrayBuffer memory can never be detached or shrunk and is used in place.
//
// Budget. The copies of calls in flight are bounded (QKV_ASYNC_MEMORY_MB, default 64 MiB:
// libuv runs four calls at a time, so more buys little): a call whose copies would exceed it
// waits, holding only references, until earlier calls settle (first come, first served; a
// call larger than the whole budget runs alone). Its inputs are copied when its turn comes;
// if one was detached or resized meanwhile, the call rejects with a TypeError instead.
//
// Lifecycle. Completion may run while the environment is being torn down (a Worker being
// terminated): then JS cannot run and every N-API call may fail. Completion therefore uses
// the C API and ignores failures: it never throws, which would abort the process.
#include "async_call.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "run.h"

namespace qkv {
namespace napi {
namespace {

std::int64_t budget_from_environment() {
  const char* text = std::getenv("QKV_ASYNC_MEMORY_MB");
  if (text != nullptr && *text != '\0') {
    char* end = nullptr;
    const long long mb = std::strtoll(text, &end, 10);
    if (end != text && *end == '\0' && mb >= 0 && mb <= (std::int64_t{1} << 40)) return mb << 20;
  }
  return std::int64_t{64} << 20;
}

// A run of bytes in the caller's memory and the copy the call reads and writes instead.
struct Region {
  std::uintptr_t begin;
  std::uintptr_t end;
  std::unique_ptr<char[]> copy;
};

class Registry;

// Whether the call works on a copy of this source: ordinary (detachable) memory, non-empty.
bool copied(const Source& src) { return !src.shared && src.data != nullptr && src.bytes != 0; }

class Job {
 public:
  Job(std::shared_ptr<Registry> registry, CallArguments&& call) : registry_(std::move(registry)), call_(std::move(call)) {}

  // References every source and plans the copy regions. False when N-API refused.
  bool prepare(napi_env env, napi_value* promise) {
    if (napi_create_promise(env, &deferred_, promise) != napi_ok) return false;
    for (const Source& src : call_.sources) {
      napi_ref ref = nullptr;
      if (napi_create_reference(env, src.array, 1, &ref) != napi_ok) return false;
      refs_.push_back(ref);
    }
    std::vector<std::pair<std::uintptr_t, std::uintptr_t>> ranges;
    for (const Source& src : call_.sources) {
      if (!copied(src)) continue;
      const auto begin = reinterpret_cast<std::uintptr_t>(src.data);
      ranges.emplace_back(begin, begin + static_cast<std::uintptr_t>(src.bytes));
    }
    std::sort(ranges.begin(), ranges.end());
    for (const auto& r : ranges) {
      if (!regions_.empty() && r.first < regions_.back().end) {
        regions_.back().end = std::max(regions_.back().end, r.second);
      } else {
        regions_.push_back({r.first, r.second, nullptr});
      }
    }
    for (const Region& r : regions_) bytes_ += static_cast<std::int64_t>(r.end - r.begin);
    return true;
  }

  std::int64_t bytes() const { return bytes_; }

  // Copies the inputs and queues the work. On failure returns the status to reject with.
  Status start(napi_env env, bool waited) {
    if (waited) {
      // The sources were read when the call was made; they must still be what they were.
      for (std::size_t i = 0; i < call_.sources.size(); ++i) {
        if (!unchanged(env, i)) {
          return Status::type_error("an input of attentionAsync was detached or resized while the call waited for "
                                    "its turn (see QKV_ASYNC_MEMORY_MB); the call did not run");
        }
      }
    }
    try {
      for (Region& r : regions_) {
        r.copy.reset(new char[r.end - r.begin]);
        std::memcpy(r.copy.get(), reinterpret_cast<const void*>(r.begin), r.end - r.begin);
      }
    } catch (const std::bad_alloc&) {
      return Status::range_error("out of memory for the copies an asynchronous call needs");
    }
    for (const Source& src : call_.sources) {
      if (!copied(src)) continue;
      char* moved = relocate(src.data);
      *field_pointer(call_.args, src.field) = moved;
    }
    napi_value name = nullptr;
    if (napi_create_string_utf8(env, "qkv.attentionAsync", NAPI_AUTO_LENGTH, &name) != napi_ok ||
        napi_create_async_work(env, nullptr, name, Execute, Complete, this, &work_) != napi_ok ||
        napi_queue_async_work(env, work_) != napi_ok) {
      return Status::range_error("could not queue the asynchronous call");
    }
    return Status::success();
  }

  // Settles the promise with `status` and frees everything; the job is done.
  void reject(napi_env env, const Status& status) {
    settle(env, false, error_value(env, status));
  }

 private:
  static void Execute(napi_env, void* data) {
    Job* job = static_cast<Job*>(data);
    job->status_ = run_guarded(job->call_.args, job->call_.device);
  }

  static void Complete(napi_env env, napi_status, void* data);

  bool unchanged(napi_env env, std::size_t i) {
    napi_value value = nullptr;
    TypedArrayView now;
    if (napi_get_reference_value(env, refs_[i], &value) != napi_ok || value == nullptr) return false;
    const Source& src = call_.sources[i];
    return typed_array_view(Napi::Value(env, value), &now) && now.data == src.data &&
           now.length * now.element_bytes == src.bytes;
  }

  char* relocate(const void* original) const {
    const auto at = reinterpret_cast<std::uintptr_t>(original);
    for (const Region& r : regions_) {
      if (at >= r.begin && at < r.end) return r.copy.get() + (at - r.begin);
    }
    return nullptr;  // unreachable: every copied source lies in a region
  }

  void finish(napi_env env) {
    if (!status_.ok()) {
      settle(env, false, error_value(env, status_));
      return;
    }
    for (std::size_t i = 0; i < call_.sources.size(); ++i) {
      const Source& src = call_.sources[i];
      if (!src.output || !copied(src)) continue;
      if (!unchanged(env, i)) {
        settle(env, false, error_value(env, Status::type_error("an output buffer was detached or resized while "
                                                               "attentionAsync ran; the result was discarded")));
        return;
      }
    }
    for (const Source& src : call_.sources) {
      if (!src.output || !copied(src)) continue;
      std::memcpy(src.data, relocate(src.data), static_cast<std::size_t>(src.bytes));
    }
    napi_value undefined = nullptr;
    napi_get_undefined(env, &undefined);
    settle(env, true, undefined);
  }

  static napi_value error_value(napi_env env, const Status& status) {
    const std::string message = "qkv: " + status.message;
    napi_value text = nullptr, error = nullptr;
    if (napi_create_string_utf8(env, message.c_str(), message.size(), &text) != napi_ok) return nullptr;
    napi_status made = status.code == StatusCode::type_error    ? napi_create_type_error(env, nullptr, text, &error)
                       : status.code == StatusCode::range_error ? napi_create_range_error(env, nullptr, text, &error)
                                                                : napi_create_error(env, nullptr, text, &error);
    return made == napi_ok ? error : nullptr;
  }

  // Every call here may fail during teardown; nothing is thrown either way.
  void settle(napi_env env, bool ok, napi_value value) {
    if (deferred_ != nullptr) {
      if (value == nullptr) napi_get_undefined(env, &value);
      if (ok) napi_resolve_deferred(env, deferred_, value);
      else napi_reject_deferred(env, deferred_, value);
      deferred_ = nullptr;
    }
    release(env);
  }

  void release(napi_env env) {
    for (napi_ref ref : refs_) napi_delete_reference(env, ref);
    refs_.clear();
    if (work_ != nullptr) napi_delete_async_work(env, work_);
    work_ = nullptr;
    for (Region& r : regions_) r.copy.reset();
  }

  friend class Registry;
  std::shared_ptr<Registry> registry_;
  CallArguments call_;
  std::vector<napi_ref> refs_;
  std::vector<Region> regions_;
  std::int64_t bytes_ = 0;
  napi_deferred deferred_ = nullptr;
  napi_async_work work_ = nullptr;
  Status status_;
};

// Per environment (main thread or Worker): the copy budget and the calls waiting for it.
class Registry {
 public:
  static std::shared_ptr<Registry> of(napi_env env) {
    void* data = nullptr;
    if (napi_get_instance_data(env, &data) == napi_ok && data != nullptr) {
      return *static_cast<std::shared_ptr<Registry>*>(data);
    }
    auto* holder = new std::shared_ptr<Registry>(std::make_shared<Registry>());
    if (napi_set_instance_data(env, holder, Finalize, nullptr) != napi_ok) {
      std::shared_ptr<Registry> registry = *holder;
      delete holder;
      return registry;
    }
    return *holder;
  }

  // Starts `job` now or queues it behind the budget. Takes ownership.
  void submit(napi_env env, std::unique_ptr<Job> job) {
    if (job->bytes() == 0 || (waiting_.empty() && fits(job->bytes()))) {
      launch(env, std::move(job), false);
    } else {
      waiting_.push_back(std::move(job));
    }
  }

  // A job finished: give back its budget and start what now fits.
  void done(napi_env env, std::int64_t bytes) {
    held_ -= bytes;
    if (closed_) return;
    while (!waiting_.empty() && fits(waiting_.front()->bytes())) {
      std::unique_ptr<Job> next = std::move(waiting_.front());
      waiting_.pop_front();
      napi_handle_scope scope = nullptr;
      napi_open_handle_scope(env, &scope);
      launch(env, std::move(next), true);
      if (scope != nullptr) napi_close_handle_scope(env, scope);
    }
  }

  std::int64_t budget() const { return budget_; }

 private:
  bool fits(std::int64_t bytes) const { return held_ == 0 || held_ + bytes <= budget_; }

  void launch(napi_env env, std::unique_ptr<Job> job, bool waited) {
    held_ += job->bytes();
    Status s = job->start(env, waited);
    if (s.ok()) {
      job.release();  // owned by its async work until Complete
      return;
    }
    held_ -= job->bytes();
    job->reject(env, s);
  }

  static void Finalize(napi_env, void* data, void*) {
    auto* holder = static_cast<std::shared_ptr<Registry>*>(data);
    (*holder)->closed_ = true;
    // Waiting jobs' references die with the environment; their memory is freed here
    // without N-API calls, which the environment being torn down could refuse.
    for (std::unique_ptr<Job>& job : (*holder)->waiting_) {
      job->refs_.clear();
      job->deferred_ = nullptr;
    }
    (*holder)->waiting_.clear();
    delete holder;
  }

  std::int64_t budget_ = budget_from_environment();
  std::int64_t held_ = 0;
  bool closed_ = false;
  std::deque<std::unique_ptr<Job>> waiting_;
};

void Job::Complete(napi_env env, napi_status, void* data) {
  std::unique_ptr<Job> job(static_cast<Job*>(data));
  std::shared_ptr<Registry> registry = job->registry_;
  const std::int64_t bytes = job->bytes_;
  job->finish(env);
  job.reset();
  registry->done(env, bytes);
}

}  // namespace

Napi::Value AttentionAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CallArguments call;
  Status status = read_arguments(info, &call);
  // Check on the JS thread so that bad arguments reject without a thread hop.
  if (status.ok()) status = check(call.args);
  if (status.ok()) {
    std::shared_ptr<Registry> registry = Registry::of(env);
    auto job = std::make_unique<Job>(registry, std::move(call));
    napi_value promise = nullptr;
    if (job->prepare(env, &promise)) {
      registry->submit(env, std::move(job));
      return Napi::Value(env, promise);
    }
    if (promise != nullptr) {
      job->reject(env, Status::range_error("could not reference the arguments of an asynchronous call"));
      return Napi::Value(env, promise);
    }
    status = Status::range_error("could not create a promise");
  }
  if (env.IsExceptionPending()) env.GetAndClearPendingException();
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(status_error(env, status).Value());
  return deferred.Promise();
}

}  // namespace napi
}  // namespace qkv
