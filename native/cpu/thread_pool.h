// A persistent pool of worker threads shared by every call in the process (and by every
// worker_thread's instance of the addon). The calling thread works too. Tasks are claimed
// dynamically; every task's result depends only on its index, so the output is bitwise
// the same for any thread count and any scheduling.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qkv {
namespace cpu {

class ThreadPool {
 public:
  using Task = std::function<void(std::int64_t task, int slot)>;

  static ThreadPool& instance();

  // Threads a call uses by default: QKV_THREADS if set, else the CPUs this process may use
  // (affinity mask and cgroup quota).
  int default_threads() const { return default_threads_; }
  // The most threads a call gets: the larger of the default and the CPUs available.
  int max_threads() const { return max_threads_; }

  // Runs fn(t, slot) for t in [0, tasks) on up to `threads` threads, slot in [0, threads).
  // Returns once every task has finished.
  // If another call holds the pool, runs everything on the caller (slot 0) instead of
  // waiting: concurrent calls (async, worker_threads) never block one another.
  void run(std::int64_t tasks, int threads, const Task& fn);

  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

 private:
  ThreadPool();
  void ensure_workers(int count);
  void worker_loop(int slot);
  void work(int slot);

  int default_threads_;
  int max_threads_;
  std::mutex busy_;  // held by the call that owns the workers

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::vector<std::thread> workers_;
  bool stopping_ = false;
  // Written under mutex_, read without it by spinning workers.
  std::atomic<std::uint64_t> generation_{0};
  int sleeping_ = 0;
  // After a job, workers spin this long for the next one before sleeping (QKV_SPIN_US):
  // back-to-back calls then skip the futex wake-up, which costs tens of µs here.
  int spin_us_;
  const Task* job_ = nullptr;
  std::int64_t job_tasks_ = 0;
  int job_threads_ = 0;
  std::int64_t next_task_ = 0;  // guarded by mutex_ (tasks are coarse; contention is low)
  std::atomic<int> running_{0};  // workers inside work(); changed under mutex_
};

}  // namespace cpu
}  // namespace qkv
