// FifoQueue round trips (send, receive, delete) beside a plain std::mutex + std::deque
// queue that keeps the same group rule: per-group order, one group in flight at a time,
// receives filled from one group first, deduplication ids remembered.
//
//   build/release/benchmarks/riffle_bench --benchmark_filter='BM_Fifo_|BM_Peer_MutexDeque'
//
// Both run one sender thread and one receiver thread (the benchmark's own), 64 groups,
// 100-byte bodies, receives of up to 10 messages with long polling, one delete per
// message. items_per_second is round trips per second.
#include <benchmark/benchmark.h>
#include <time.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fmt/format.h"
#include "riffle/fifo_queue.h"

namespace {

constexpr int kGroups = 64;
constexpr int kBodyBytes = 100;
constexpr int kMessagesPerIteration = 1 << 16;

// CPU time of the calling thread, to tell which side of a round trip is the bottleneck.
int64_t ThreadCpuNanos() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::vector<std::string> GroupIds() {
  std::vector<std::string> ids;
  for (int g = 0; g < kGroups; ++g) ids.push_back(fmt::format("group-{:02}", g));
  return ids;
}

void BM_Fifo_SendReceiveDelete(benchmark::State& state) {
  const std::vector<std::string> groups = GroupIds();
  const std::string body(kBodyBytes, 'x');
  int64_t receives = 0;
  std::atomic<int64_t> sender_cpu{0};
  const int64_t receiver_start = ThreadCpuNanos();
  for (auto _ : state) {
    auto queue = riffle::FifoQueue::Create({.name = "bench.fifo"}).value();
    std::thread sender([&] {
      const int64_t start = ThreadCpuNanos();
      riffle::SendMessageResult result;
      char dedup[24];
      for (int i = 0; i < kMessagesPerIteration; ++i) {
        const auto len = fmt::format_to_n(dedup, sizeof(dedup), "{}", i).size;
        absl::Status s =
            queue->SendMessage({.message_group_id = groups[i % kGroups],
                                .message_body = body,
                                .message_deduplication_id = std::string_view(dedup, len)},
                               result);
        if (!s.ok()) std::abort();
      }
      sender_cpu += ThreadCpuNanos() - start;
    });
    std::vector<riffle::Message> messages;
    int deleted = 0;
    while (deleted < kMessagesPerIteration) {
      ++receives;
      if (!queue->ReceiveMessage({.max_number_of_messages = 10, .wait_time_seconds = 1}, messages)
               .ok()) {
        std::abort();
      }
      for (const riffle::Message& m : messages) {
        if (!queue->DeleteMessage(m.receipt_handle).ok()) std::abort();
        ++deleted;
      }
    }
    sender.join();
  }
  state.SetItemsProcessed(state.iterations() * kMessagesPerIteration);
  // Messages per receive call: 10 when the receiver is the bottleneck, near 1 when it
  // keeps up with the sender and waits.
  const double messages = static_cast<double>(state.iterations() * kMessagesPerIteration);
  state.counters["per_receive"] = messages / receives;
  // CPU nanoseconds per message on the sending and on the receiving thread.
  state.counters["send_cpu_ns"] = static_cast<double>(sender_cpu.load()) / messages;
  state.counters["recv_cpu_ns"] = static_cast<double>(ThreadCpuNanos() - receiver_start) / messages;
}
BENCHMARK(BM_Fifo_SendReceiveDelete)->UseRealTime()->Unit(benchmark::kMillisecond);

// The queue one would write first: one mutex, a deque per group, a deque of ready groups,
// in-flight messages by receipt handle, deduplication ids in a hash set. It has no
// visibility timeouts, retention or validation, so it does less than FifoQueue.
class MutexDequeFifo {
 public:
  struct Message {
    std::string group;
    std::string body;
    std::string receipt_handle;
  };

  void Send(const std::string& group, const std::string& body, const std::string& dedup_id) {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!dedup_.insert(dedup_id).second) return;
      Group& g = groups_[group];
      g.queued.push_back({group, body, {}});
      if (g.queued.size() == 1 && g.in_flight == 0) ready_.push_back(group);
      wake = waiters_ > 0;
    }
    if (wake) cv_.notify_all();
  }

  void Receive(size_t max, std::chrono::milliseconds wait, std::vector<Message>* out) {
    out->clear();
    std::unique_lock<std::mutex> lock(mu_);
    ++waiters_;
    cv_.wait_for(lock, wait, [&] { return !ready_.empty(); });
    --waiters_;
    while (out->size() < max && !ready_.empty()) {
      const std::string group = ready_.front();
      ready_.pop_front();
      Group& g = groups_[group];
      while (out->size() < max && !g.queued.empty()) {
        Message m = std::move(g.queued.front());
        g.queued.pop_front();
        m.receipt_handle = fmt::format("{}", next_handle_++);
        ++g.in_flight;
        in_flight_.emplace(m.receipt_handle, m);
        out->push_back(std::move(m));
      }
    }
  }

  bool Delete(const std::string& receipt_handle) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = in_flight_.find(receipt_handle);
    if (it == in_flight_.end()) return false;
    Group& g = groups_[it->second.group];
    if (--g.in_flight == 0 && !g.queued.empty()) ready_.push_back(it->second.group);
    in_flight_.erase(it);
    return true;
  }

 private:
  struct Group {
    std::deque<Message> queued;
    int in_flight = 0;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  int waiters_ = 0;
  std::unordered_map<std::string, Group> groups_;
  std::deque<std::string> ready_;
  std::unordered_map<std::string, Message> in_flight_;
  std::unordered_set<std::string> dedup_;
  uint64_t next_handle_ = 0;
};

void BM_Peer_MutexDeque(benchmark::State& state) {
  const std::vector<std::string> groups = GroupIds();
  const std::string body(kBodyBytes, 'x');
  int64_t receives = 0;
  std::atomic<int64_t> sender_cpu{0};
  const int64_t receiver_start = ThreadCpuNanos();
  for (auto _ : state) {
    MutexDequeFifo queue;
    std::thread sender([&] {
      const int64_t start = ThreadCpuNanos();
      for (int i = 0; i < kMessagesPerIteration; ++i) {
        queue.Send(groups[i % kGroups], body, fmt::format("{}", i));
      }
      sender_cpu += ThreadCpuNanos() - start;
    });
    std::vector<MutexDequeFifo::Message> messages;
    int deleted = 0;
    while (deleted < kMessagesPerIteration) {
      ++receives;
      queue.Receive(10, std::chrono::seconds(1), &messages);
      for (const auto& m : messages) {
        if (!queue.Delete(m.receipt_handle)) std::abort();
        ++deleted;
      }
    }
    sender.join();
  }
  state.SetItemsProcessed(state.iterations() * kMessagesPerIteration);
  // Messages per receive call: 10 when the receiver is the bottleneck, near 1 when it
  // keeps up with the sender and waits.
  const double messages = static_cast<double>(state.iterations() * kMessagesPerIteration);
  state.counters["per_receive"] = messages / receives;
  // CPU nanoseconds per message on the sending and on the receiving thread.
  state.counters["send_cpu_ns"] = static_cast<double>(sender_cpu.load()) / messages;
  state.counters["recv_cpu_ns"] = static_cast<double>(ThreadCpuNanos() - receiver_start) / messages;
}
BENCHMARK(BM_Peer_MutexDeque)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
