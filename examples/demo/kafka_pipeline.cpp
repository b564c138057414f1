// riffle-demo --kafka: the pipeline of main.cpp on a Kafka topic. Only the construction of
// the stream differs; producers put through the asynchronous batched form (a synchronous put
// waits for the brokers), readers and consumers are the same classes as in process, and the
// consumers' checkpoints are the topic's committed offsets.
#include "kafka_pipeline.h"

#include <cstdio>

#ifndef RIFFLE_DEMO_WITH_KAFKA

namespace demo {
int RunKafkaPipeline(const KafkaPipelineFlags&) {
  std::fputs(
      "riffle-demo: --kafka needs riffle::kafka (configure with -DRIFFLE_WITH_KAFKA=ON "
      "and librdkafka-dev installed)\n",
      stderr);
  return 2;
}
}  // namespace demo

#else

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "riffle/consumer.h"
#include "riffle/kafka.h"
#include "riffle/lineage_reader.h"
#include "verifier.h"

namespace demo {
namespace {

using SteadyClock = std::chrono::steady_clock;

void Fail(const char* what, const absl::Status& s) {
  std::fprintf(stderr, "riffle-demo: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

// A polling reader of the whole stream (parents before children, as in process) until it
// has `expected` records, or nothing new came for `patience` once the producers are done.
void KafkaReader(riffle::RecordSource& stream, const std::atomic<bool>& producers_done,
                 const std::atomic<uint64_t>& expected, OrderVerifier& verifier, uint64_t* missed) {
  riffle::LineageReader reader(stream);
  auto last_progress = SteadyClock::now();
  for (;;) {
    const size_t progressed = reader.Poll(
        [&](const auto&, const riffle::Record& r) { verifier.See(r.partition_key, r.data); });
    if (!reader.last_error().ok()) Fail("GetRecords", reader.last_error());
    if (progressed > 0) last_progress = SteadyClock::now();
    if (producers_done.load(std::memory_order_acquire) &&
        (verifier.records() >= expected.load() ||
         SteadyClock::now() - last_progress > std::chrono::seconds(5))) {
      break;
    }
    if (progressed == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  *missed = reader.missed_records();
}

// Checkpoints (a synchronous commit of the application's consumer group) at most every
// 200 ms per shard, and when the shard is handed back: a commit per batch would cost a
// round trip to the cluster per batch.
class Processor : public riffle::RecordProcessor {
 public:
  explicit Processor(OrderVerifier* verifier) : verifier_(verifier) {}
  void Initialize(std::string_view, std::string_view) override {}
  void ProcessRecords(const riffle::ProcessRecordsInput& input,
                      riffle::Checkpointer& checkpointer) override {
    for (const riffle::Record& r : input.records) verifier_->See(r.partition_key, r.data);
    if (SteadyClock::now() - last_checkpoint_ > std::chrono::milliseconds(200)) {
      (void)checkpointer.Checkpoint();
      last_checkpoint_ = SteadyClock::now();
    }
  }
  void ShardEnded(riffle::Checkpointer& checkpointer) override { (void)checkpointer.Checkpoint(); }
  void Shutdown(riffle::ShutdownReason reason, riffle::Checkpointer& checkpointer) override {
    if (reason == riffle::ShutdownReason::kRequested) (void)checkpointer.Checkpoint();
  }

 private:
  OrderVerifier* verifier_;
  SteadyClock::time_point last_checkpoint_ = SteadyClock::now();
};

// The mock cluster keeps about 5 MB per partition and drops older records: with it,
// producers wait while the slowest reader is more than this many records behind.
constexpr uint64_t kMockWindowRecords = 40'000;

// The fewest records any reader has verified.
using SlowestReader = std::function<uint64_t()>;

// Puts `share` records of the producer's keys in batches of 500, asynchronously; counts
// what the brokers acknowledged and what failed.
void Produce(riffle::kafka::Stream& stream, int producer, uint64_t share,
             const KafkaPipelineFlags& flags, const SlowestReader& slowest,
             std::atomic<uint64_t>& sent, std::atomic<uint64_t>& put,
             std::atomic<uint64_t>& put_errors) {
  std::vector<std::string> keys;
  for (int k = 0; k < flags.keys_per_producer; ++k) keys.push_back(KeyName(producer, k));
  std::vector<uint64_t> counters(keys.size(), 0);
  std::vector<std::string> data;
  std::vector<riffle::PutRecordsRequestEntry> entries;
  auto done = [&put, &put_errors](const riffle::PutRecordsResult& r) {
    put.fetch_add(r.records.size() - static_cast<uint64_t>(r.failed_record_count));
    put_errors.fetch_add(static_cast<uint64_t>(r.failed_record_count));
  };
  for (uint64_t i = 0; i < share;) {
    while (slowest && sent.load() > slowest() + kMockWindowRecords) {
      stream.Poll();
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    data.clear();
    entries.clear();
    for (; i < share && data.size() < 500; ++i) {
      const std::size_t k = i % keys.size();
      data.push_back(MakeData(keys[k], counters[k]++, flags.record_bytes));
    }
    for (std::size_t j = 0; j < data.size(); ++j) {
      entries.push_back({keys[(i - data.size() + j) % keys.size()], data[j], {}});
    }
    if (absl::Status s = stream.PutRecordsAsync(entries, done); !s.ok()) Fail("PutRecordsAsync", s);
    sent.fetch_add(entries.size());
    stream.Poll();
  }
}

}  // namespace

int RunKafkaPipeline(const KafkaPipelineFlags& flags) {
  std::unique_ptr<riffle::kafka::MockCluster> cluster;
  std::string bootstrap = flags.kafka;
  // A topic of its own per run, so that the readers verify exactly this run's records.
  const std::string topic = fmt::format(
      "riffle-demo-{}", std::chrono::system_clock::now().time_since_epoch().count() / 1000);
  riffle::kafka::StreamOptions options;
  options.topic = topic;
  options.max_record_size_bytes = std::max<uint64_t>(flags.record_bytes + 64, 4096);
  if (flags.kafka == "mock") {
    auto c = riffle::kafka::MockCluster::Create(3);
    if (!c.ok()) Fail("MockCluster", c.status());
    cluster = *std::move(c);
    bootstrap = cluster->bootstrap_servers();
    if (absl::Status s = cluster->CreateTopic(topic, flags.shards, 3); !s.ok()) {
      Fail("CreateTopic", s);
    }
  } else {
    options.shard_count = flags.shards;  // created by Create (CreateTopics)
  }
  options.bootstrap_servers = bootstrap;
  options.linger = absl::Milliseconds(5);
  options.config = {{"log_level", "3"}};
  auto created = riffle::kafka::Stream::Create(options);
  if (!created.ok()) Fail("kafka::Stream::Create", created.status());
  riffle::kafka::Stream& stream = **created;
  auto store = riffle::kafka::OffsetCheckpointStore::Create(
      {.stream = &stream, .group_prefix = topic + "-"});
  if (!store.ok()) Fail("OffsetCheckpointStore", store.status());
  std::fprintf(stderr, "riffle-demo: on Kafka at %s, topic %s (%d partitions)%s\n",
               flags.kafka == "mock" ? "an in-process mock cluster" : bootstrap.c_str(),
               topic.c_str(), stream.shard_count(),
               flags.efo_consumers > 0
                   ? "; enhanced fan-out consumers skipped (Kafka has no push subscriptions)"
                   : "");

  std::atomic<bool> producers_done{false};
  std::atomic<uint64_t> put{0}, put_errors{0}, expected{UINT64_MAX};
  std::vector<std::unique_ptr<OrderVerifier> > verifiers;
  std::vector<uint64_t> missed(static_cast<std::size_t>(flags.readers), 0);
  std::vector<std::thread> readers;
  for (int r = 0; r < flags.readers; ++r) {
    verifiers.push_back(std::make_unique<OrderVerifier>(flags.producers, flags.keys_per_producer));
    readers.emplace_back(KafkaReader, std::ref(stream), std::cref(producers_done),
                         std::cref(expected), std::ref(*verifiers.back()),
                         &missed[static_cast<std::size_t>(r)]);
  }
  struct ConsumerRun {
    std::string name;
    std::unique_ptr<OrderVerifier> verifier;
    std::unique_ptr<riffle::Consumer> consumer;
  };
  std::vector<ConsumerRun> consumers;
  for (int i = 0; i < flags.kcl_consumers; ++i) {
    ConsumerRun run{fmt::format("kcl-{}", i),
                    std::make_unique<OrderVerifier>(flags.producers, flags.keys_per_producer),
                    nullptr};
    OrderVerifier* verifier = run.verifier.get();
    auto c = riffle::Consumer::Create(
        {.stream = &stream,
         .application_name = run.name,
         .checkpoint_store = store->get(),
         .lease_refresh_interval = absl::Milliseconds(100),
         .max_records = 1000,
         .processor_factory = [verifier] { return std::make_unique<Processor>(verifier); }});
    if (!c.ok()) Fail("Consumer", c.status());
    run.consumer = *std::move(c);
    if (absl::Status s = run.consumer->Start(); !s.ok()) Fail("Consumer Start", s);
    consumers.push_back(std::move(run));
  }

  SlowestReader slowest;
  if (cluster) {
    slowest = [&]() {
      uint64_t n = UINT64_MAX;
      for (const auto& v : verifiers) n = std::min(n, v->records());
      for (const auto& c : consumers) n = std::min(n, c.verifier->records());
      return n == UINT64_MAX ? uint64_t{0} : n;
    };
    std::fprintf(stderr,
                 "riffle-demo: the mock cluster keeps about 5 MB per partition: producers wait "
                 "while a reader is more than %llu records behind\n",
                 static_cast<unsigned long long>(kMockWindowRecords));
  }
  std::atomic<uint64_t> sent{0};
  const auto start = SteadyClock::now();
  std::vector<std::thread> producers;
  for (int p = 0; p < flags.producers; ++p) {
    const uint64_t share = flags.records / static_cast<uint64_t>(flags.producers) +
                           (static_cast<uint64_t>(p) < flags.records % flags.producers ? 1 : 0);
    producers.emplace_back(Produce, std::ref(stream), p, share, std::cref(flags),
                           std::cref(slowest), std::ref(sent), std::ref(put), std::ref(put_errors));
  }
  std::atomic<bool> all_done{false};
  std::thread progress([&] {
    uint64_t last_put = 0;
    auto last = SteadyClock::now();
    while (!all_done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      const auto now = SteadyClock::now();
      const uint64_t p = put.load();
      const double secs = std::chrono::duration<double>(now - last).count();
      uint64_t read = 0;
      for (const auto& v : verifiers) read += v->records();
      for (const auto& c : consumers) read += c.verifier->records();
      std::fprintf(stderr, "\r  put %10llu (%6.2f M/s)  read %10llu by %d readers ",
                   static_cast<unsigned long long>(p), (p - last_put) / secs / 1e6,
                   static_cast<unsigned long long>(read),
                   flags.readers + static_cast<int>(consumers.size()));
      last_put = p;
      last = now;
    }
    std::fprintf(stderr, "\n");
  });

  for (auto& t : producers) t.join();
  if (absl::Status s = stream.Flush(); !s.ok()) Fail("Flush", s);
  const double put_seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  const uint64_t records_put = put.load();
  expected = records_put;
  producers_done.store(true, std::memory_order_release);
  for (auto& t : readers) t.join();
  for (auto& c : consumers) {
    uint64_t last = 0;
    for (int still = 0; c.verifier->records() < records_put && still < 5000; ++still) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (c.verifier->records() != last) still = 0;
      last = c.verifier->records();
    }
    c.consumer->Stop();
  }
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  all_done.store(true);
  progress.join();

  Outcome outcome;
  for (int r = 0; r < flags.readers; ++r) {
    outcome.Add(fmt::format("poller-{}", r), *verifiers[static_cast<std::size_t>(r)], records_put,
                missed[static_cast<std::size_t>(r)]);
  }
  for (const auto& c : consumers) outcome.Add(c.name, *c.verifier, records_put);

  std::printf(
      "riffle-demo: %d producers, %d shards (Kafka partitions), %d readers, %zu-byte "
      "records, topic %s\n",
      flags.producers, stream.shard_count(), static_cast<int>(outcome.records_read.size()),
      flags.record_bytes, topic.c_str());
  std::printf("  put      %llu records in %.2f s (%.2f M records/s), %llu put errors\n",
              static_cast<unsigned long long>(records_put), put_seconds,
              records_put / put_seconds / 1e6, static_cast<unsigned long long>(put_errors.load()));
  outcome.PrintReaders();
  outcome.PrintVerdict(seconds);
  if (flags.json) {
    std::printf("{%s,\"backend\":\"kafka\",\"topic\":\"%s\"}\n",
                outcome
                    .JsonFields(records_put, put_errors.load(), flags.producers,
                                stream.shard_count(), flags.record_bytes, 0, seconds, put_seconds)
                    .c_str(),
                topic.c_str());
  }
  return outcome.ok() ? 0 : 1;
}

}  // namespace demo

#endif  // RIFFLE_DEMO_WITH_KAFKA
