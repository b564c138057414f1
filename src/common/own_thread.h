// The "own thread" convention (docs/architecture.md, Conventions): Start() runs a
// component's host-driven step on a thread of its own until Stop(); after a step that
// handled nothing the thread sleeps a while (real time) or until Stop().
//
// Thread safety: Start() and Stop() by the component's owner; the step runs on the thread.
#ifndef RIFFLE_COMMON_OWN_THREAD_H_
#define RIFFLE_COMMON_OWN_THREAD_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace riffle::detail {

class OwnThread {
 public:
  OwnThread() = default;
  ~OwnThread() { Stop(); }
  OwnThread(const OwnThread&) = delete;
  OwnThread& operator=(const OwnThread&) = delete;

  // Runs `step` until Stop(). ResourceInUseException (naming `what`) when already started
  // or stopped.
  [[nodiscard]] absl::Status Start(const std::string& what, std::function<size_t()> step,
                                   absl::Duration idle);
  // Ends and joins the thread. Idempotent; after it, Start() is refused.
  void Stop();
  bool stopped() const { return stopped_; }

 private:
  bool started_ = false;
  bool stopped_ = false;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace riffle::detail

#endif  // RIFFLE_COMMON_OWN_THREAD_H_
