#include "thread_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#if defined(__linux__)
#include <sched.h>
#endif

namespace qkv {
namespace cpu {

namespace {

// An integer environment variable in [min, max], or `fallback`.
int env_int(const char* name, long min, long max, int fallback) {
  const char* env = std::getenv(name);
  if (env == nullptr) return fallback;
  char* end = nullptr;
  const long n = std::strtol(env, &end, 10);
  return end != env && *end == '\0' && n >= min && n <= max ? static_cast<int>(n) : fallback;
}

#if defined(__linux__)
// CPUs a cgroup quota allows (cgroup v2 cpu.max, else v1 cfs quota/period), rounded up;
// 0 when there is no quota.
int cgroup_cpu_limit() {
  double quota = -1, period = -1;
  if (std::FILE* f = std::fopen("/sys/fs/cgroup/cpu.max", "r")) {
    char text[64] = {0};
    if (std::fscanf(f, "%63s %lf", text, &period) == 2 && std::string(text) != "max") quota = std::atof(text);
    std::fclose(f);
  } else if (std::FILE* q = std::fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r")) {
    if (std::fscanf(q, "%lf", &quota) != 1) quota = -1;
    std::fclose(q);
    if (std::FILE* p = std::fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r")) {
      if (std::fscanf(p, "%lf", &period) != 1) period = -1;
      std::fclose(p);
    }
  }
  if (quota <= 0 || period <= 0) return 0;
  return static_cast<int>(std::ceil(quota / period));
}
#endif

// CPUs this process may run on: the affinity mask (taskset, cpusets) and any cgroup CPU
// quota (containers), else what the hardware has.
int available_cpus() {
  const unsigned hw = std::thread::hardware_concurrency();
  int cpus = hw == 0 ? 1 : static_cast<int>(hw);
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) cpus = CPU_COUNT(&set);
  const int quota = cgroup_cpu_limit();
  if (quota > 0 && quota < cpus) cpus = quota;
#endif
  return cpus < 1 ? 1 : cpus;
}

}  // namespace

ThreadPool& ThreadPool::instance() {
  static ThreadPool pool;
  return pool;
}

ThreadPool::ThreadPool()
    : default_threads_(env_int("QKV_THREADS", 1, 1024, available_cpus())),
      max_threads_(std::max(default_threads_, available_cpus())),
      spin_us_(env_int("QKV_SPIN_US", 0, 100000, 200)) {}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::ensure_workers(int count) {
  // Slot 0 is the caller; workers take slots 1..count-1.
  while (static_cast<int>(workers_.size()) < count - 1) {
    const int slot = static_cast<int>(workers_.size()) + 1;
    workers_.emplace_back([this, slot] { worker_loop(slot); });
  }
}

void ThreadPool::work(int slot) {
  for (;;) {
    std::int64_t task;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (next_task_ >= job_tasks_) return;
      task = next_task_++;
    }
    (*job_)(task, slot);
  }
}

void ThreadPool::worker_loop(int slot) {
  std::uint64_t seen = 0;
  for (;;) {
    // Spin a while for the next job, then sleep.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us_);
    for (int i = 0; generation_.load(std::memory_order_acquire) == seen; ++i) {
      _mm_pause();
      if ((i & 255) == 255 && std::chrono::steady_clock::now() > deadline) break;
    }
    {
      std::unique_lock<std::mutex> lock(mutex_);
      ++sleeping_;
      wake_.wait(lock, [&] { return stopping_ || generation_.load(std::memory_order_relaxed) != seen; });
      --sleeping_;
      if (stopping_) return;
      seen = generation_.load(std::memory_order_relaxed);
      if (slot >= job_threads_) continue;
      ++running_;
    }
    work(slot);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --running_;
    }
    done_.notify_all();
  }
}

void ThreadPool::run(std::int64_t tasks, int threads, const Task& fn) {
  // More threads than CPUs cannot be faster, and each would live as long as the process.
  if (threads > max_threads_) threads = max_threads_;
  if (threads > tasks) threads = static_cast<int>(tasks);
  std::unique_lock<std::mutex> owner(busy_, std::try_to_lock);
  if (threads <= 1 || !owner.owns_lock()) {
    for (std::int64_t t = 0; t < tasks; ++t) fn(t, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ensure_workers(threads);
    job_ = &fn;
    job_tasks_ = tasks;
    job_threads_ = threads;
    next_task_ = 0;
    generation_.fetch_add(1, std::memory_order_release);
    if (sleeping_ > 0) wake_.notify_all();
  }
  work(0);
  // Every task is claimed once work() returns; wait for the workers still running one,
  // spinning first since the last tasks usually end within microseconds.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us_);
  for (int i = 0; running_.load(std::memory_order_acquire) != 0; ++i) {
    _mm_pause();
    if ((i & 255) == 255 && std::chrono::steady_clock::now() > deadline) break;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return running_.load(std::memory_order_relaxed) == 0 && next_task_ >= job_tasks_; });
  job_ = nullptr;
}

}  // namespace cpu
}  // namespace qkv
