#include "common/own_thread.h"

#include <algorithm>

#include "fmt/format.h"
#include "riffle/status.h"

namespace riffle::detail {

absl::Status OwnThread::Start(const std::string& what, std::function<size_t()> step,
                              absl::Duration idle) {
  if (started_ || stopped_) {
    return ResourceInUseError(
        fmt::format("{} was already {}.", what, started_ ? "started" : "stopped"));
  }
  started_ = true;
  // A day at most between steps when idle: the wait adds it to the steady clock's time,
  // which an absl::InfiniteDuration() (a caller's "never") would overflow.
  idle = std::clamp(idle, absl::ZeroDuration(), absl::Hours(24));
  thread_ = std::thread([this, step = std::move(step), idle] {
    while (!stop_.load(std::memory_order_acquire)) {
      if (step() > 0) continue;
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, absl::ToChronoNanoseconds(idle),
                   [this] { return stop_.load(std::memory_order_acquire); });
    }
  });
  return absl::OkStatus();
}

void OwnThread::Stop() {
  if (stopped_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  stopped_ = true;
}

}  // namespace riffle::detail
