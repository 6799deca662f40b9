#include "thread_pool.h"

#include <cstdlib>
#include <string>

namespace qkv {
namespace cpu {

namespace {
int threads_from_environment() {
  const char* env = std::getenv("QKV_THREADS");
  if (env != nullptr) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n >= 1 && n <= 1024) return static_cast<int>(n);
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}
}  // namespace

ThreadPool& ThreadPool::instance() {
  static ThreadPool pool;
  return pool;
}

ThreadPool::ThreadPool() : default_threads_(threads_from_environment()) {}

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
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
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
    ++generation_;
  }
  wake_.notify_all();
  work(0);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return running_ == 0 && next_task_ >= job_tasks_; });
  job_ = nullptr;
}

}  // namespace cpu
}  // namespace qkv
