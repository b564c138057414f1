// Enhanced fan-out: what subscriptions cost the producer, and put-to-handler latency
// beside a Boost SPSC queue's one-way latency measured in the same run.
//   build/release/benchmarks/riffle_bench
//   --benchmark_filter='BM_EFO_|BM_Peer_BoostSpsc' --benchmark_repetitions=3
//   --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <boost/lockfree/spsc_queue.hpp>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "riffle/stream.h"
#include "riffle/subscription.h"

namespace {

using Steady = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Steady::now().time_since_epoch())
      .count();
}

// Latency pairs run on different cores (0 and 1): two spinning threads that share a core
// measure the scheduler's tick, not the handoff. Returns the previous mask.
cpu_set_t PinTo(int cpu) {
  cpu_set_t old;
  CPU_ZERO(&old);
  pthread_getaffinity_np(pthread_self(), sizeof old, &old);
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  return old;
}

void Restore(const cpu_set_t& mask) { pthread_setaffinity_np(pthread_self(), sizeof mask, &mask); }

std::unique_ptr<riffle::Stream> MakeStream(uint64_t ring_bytes) {
  riffle::StreamOptions o;
  o.stream_name = "bench";
  o.shard_count = 1;
  o.ring_capacity_bytes = ring_bytes;
  o.max_record_size_bytes = 4096;
  o.routing = riffle::RoutingMode::kXxh3;
  return *riffle::Stream::Create(o);
}

// Producer records/s with N host-driven subscriptions polled between bursts. Only the
// bursts are timed: the figure is the put path's cost, which fan-out must not raise.
void BM_EFO_FanOut(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto stream = MakeStream(uint64_t{64} << 20);
  std::vector<std::unique_ptr<riffle::Subscription>> subs;
  uint64_t delivered = 0;
  const std::string shard = riffle::FormatShardId(0);
  for (int i = 0; i < n; ++i) {
    const std::string name = fmt::format("c{}", i);
    (void)*stream->RegisterStreamConsumer(name);
    subs.push_back(*stream->SubscribeToShard(
        {name, shard, {riffle::StartingPositionType::kLatest, {}, std::nullopt}},
        [&delivered](const riffle::SubscribeToShardEvent& e) { delivered += e.records.size(); },
        {.lifetime = absl::InfiniteDuration()}));
  }
  constexpr int kBurst = 1024;
  const std::string data(100, 'd');
  const std::string keys[4] = {"alpha", "bravo", "charlie", "delta"};
  for (auto _ : state) {
    const auto t0 = Steady::now();
    for (int i = 0; i < kBurst; ++i) {
      auto r = stream->PutRecord(keys[i & 3], data);
      benchmark::DoNotOptimize(r);
    }
    const auto t1 = Steady::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    for (auto& s : subs) {
      while (s->Poll()) {
      }
    }
  }
  state.SetItemsProcessed(state.iterations() * kBurst);
  state.counters["delivered_per_put"] =
      static_cast<double>(delivered) / static_cast<double>(state.iterations() * kBurst);
}
BENCHMARK(BM_EFO_FanOut)->Arg(0)->Arg(1)->Arg(2)->Arg(4)->UseManualTime();

// Put-to-handler latency: one record in flight; a busy-spinning subscription thread
// stamps its arrival. The producer waits for the handler before the next put.
void BM_EFO_Latency(benchmark::State& state) {
  auto stream = MakeStream(uint64_t{16} << 20);
  (void)*stream->RegisterStreamConsumer("latency");
  std::vector<int64_t> samples;
  samples.reserve(1 << 22);
  std::atomic<uint64_t> seen{0};
  auto sub =
      *stream->SubscribeToShard({"latency",
                                 riffle::FormatShardId(0),
                                 {riffle::StartingPositionType::kLatest, {}, std::nullopt}},
                                [&](const riffle::SubscribeToShardEvent& e) {
                                  const int64_t now = NowNs();
                                  for (const auto& r : e.records) {
                                    int64_t sent;
                                    std::memcpy(&sent, r.data.data(), sizeof sent);
                                    if (samples.size() < samples.capacity())
                                      samples.push_back(now - sent);
                                  }
                                  seen.fetch_add(e.records.size(), std::memory_order_release);
                                },
                                {.lifetime = absl::InfiniteDuration(),
                                 .wait = riffle::WaitStrategy::kBusySpin});
  if (!sub->Start().ok()) state.SkipWithError("Start failed");
  char payload[64] = {};
  const cpu_set_t mask = PinTo(0);
  // Warm-up: the first event pins the subscription's thread.
  (void)stream->PutRecord("key", std::string_view(payload, sizeof payload));
  while (seen.load(std::memory_order_acquire) < 1) riffle::detail::CpuRelax();
  samples.clear();
  uint64_t sent = 1;
  for (auto _ : state) {
    const int64_t t = NowNs();
    std::memcpy(payload, &t, sizeof t);
    auto r = stream->PutRecord("key", std::string_view(payload, sizeof payload));
    benchmark::DoNotOptimize(r);
    ++sent;
    while (seen.load(std::memory_order_acquire) < sent) riffle::detail::CpuRelax();
  }
  sub->Stop();
  Restore(mask);
  std::sort(samples.begin(), samples.end());
  if (!samples.empty()) {
    state.counters["p50_ns"] = static_cast<double>(samples[samples.size() / 2]);
    state.counters["p99_ns"] = static_cast<double>(samples[samples.size() * 99 / 100]);
  }
}
BENCHMARK(BM_EFO_Latency)->UseRealTime();

// The peer: a Boost SPSC queue ping-pong between two spinning threads; one way is half
// a round trip.
void BM_Peer_BoostSpsc_PingPong(benchmark::State& state) {
  boost::lockfree::spsc_queue<int64_t, boost::lockfree::capacity<1024>> ping, pong;
  std::atomic<bool> stop{false};
  const cpu_set_t mask = PinTo(0);
  std::thread echo([&] {
    PinTo(1);
    int64_t v;
    while (!stop.load(std::memory_order_relaxed)) {
      if (ping.pop(v)) {
        while (!pong.push(v)) riffle::detail::CpuRelax();
      } else {
        riffle::detail::CpuRelax();
      }
    }
  });
  std::vector<int64_t> round_trips;
  round_trips.reserve(1 << 22);
  for (auto _ : state) {
    const int64_t t = NowNs();
    while (!ping.push(t)) riffle::detail::CpuRelax();
    int64_t v;
    while (!pong.pop(v)) riffle::detail::CpuRelax();
    if (round_trips.size() < round_trips.capacity()) round_trips.push_back(NowNs() - v);
  }
  stop.store(true);
  echo.join();
  Restore(mask);
  std::sort(round_trips.begin(), round_trips.end());
  if (!round_trips.empty()) {
    state.counters["one_way_ns"] = static_cast<double>(round_trips[round_trips.size() / 2]) / 2;
  }
}
BENCHMARK(BM_Peer_BoostSpsc_PingPong)->UseRealTime();

}  // namespace
