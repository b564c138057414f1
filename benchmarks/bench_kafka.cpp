// riffle::kafka beside raw librdkafka, both against the same 3-broker mock cluster in this
// process, in the same run:
//   BM_Kafka_PutRecords     PutRecordsAsync of 500 records (100-byte data, 64 keys, MD5
//                           routing) per call; an iteration is 100 calls and a Flush().
//   BM_Peer_RdKafkaProduce  rd_kafka_producev of the same records to the same partitions
//                           (computed beforehand), rd_kafka_poll every 500, rd_kafka_flush.
//                           Same producer properties: idempotent, acks=all, linger.ms=5.
//   BM_Kafka_GetRecords     GetRecords (limit 10,000) following next_shard_iterator through
//                           a partition of 30,000 such records from TRIM_HORIZON, once per
//                           iteration.
//   BM_Peer_RdKafkaConsume  rd_kafka_consume_batch_queue (up to 10,000, what is there) on the
//                           partition's queue of a consumer assigned to it, sought to 0 once
//                           per iteration; keys and values copied out into a reused buffer
//                           (GetRecords copies them into its result). Same fetch properties
//                           as riffle's readers.
// Real time (manual for the reads, see below): the work is shared with librdkafka's threads
// and the mock brokers'.
// Run: build/release/benchmarks/riffle_bench --benchmark_filter='Kafka'
#include <benchmark/benchmark.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "riffle/kafka.h"

namespace {

constexpr int kKeys = 64;
constexpr std::size_t kRecordBytes = 100;
constexpr std::size_t kBatch = 500;
constexpr int kBatchesPerIteration = 100;
constexpr int64_t kReadTopicRecords = 30'000;

// One cluster for the whole run, never destroyed (benchmarks end with the process).
riffle::kafka::MockCluster& Cluster() {
  static riffle::kafka::MockCluster* cluster = [] {
    auto c = riffle::kafka::MockCluster::Create(3);
    return c.ok() ? c->release() : nullptr;
  }();
  return *cluster;
}

struct Records {
  std::vector<std::string> keys, data;
  std::vector<riffle::PutRecordsRequestEntry> entries;  // kBatch entries
};

const Records& TheRecords() {
  static const Records records = [] {
    Records r;
    for (std::size_t i = 0; i < kBatch; ++i) {
      r.keys.push_back(fmt::format("user-{:04}", i % kKeys));
      std::string d =
          fmt::format("{{\"seq\":{},\"user\":\"{}\",\"event\":\"click\"}}", i, r.keys.back());
      d.resize(kRecordBytes, ' ');
      r.data.push_back(std::move(d));
    }
    for (std::size_t i = 0; i < kBatch; ++i) r.entries.push_back({r.keys[i], r.data[i], {}});
    return r;
  }();
  return records;
}

riffle::kafka::StreamOptions Options(const std::string& topic) {
  riffle::kafka::StreamOptions o;
  o.bootstrap_servers = Cluster().bootstrap_servers();
  o.topic = topic;
  o.linger = absl::Milliseconds(5);
  return o;
}

rd_kafka_t* RawClient(rd_kafka_type_t type,
                      const std::vector<std::pair<std::string, std::string>>& props,
                      void (*dr)(rd_kafka_t*, const rd_kafka_message_t*, void*) = nullptr) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char error[256];
  rd_kafka_conf_set(conf, "bootstrap.servers", Cluster().bootstrap_servers().c_str(), error,
                    sizeof(error));
  for (const auto& [k, v] : props)
    rd_kafka_conf_set(conf, k.c_str(), v.c_str(), error, sizeof(error));
  if (dr != nullptr) rd_kafka_conf_set_dr_msg_cb(conf, dr);
  return rd_kafka_new(type, conf, error, sizeof(error));
}

void BM_Kafka_PutRecords(benchmark::State& state) {
  static const bool created = Cluster().CreateTopic("bench-put", 4).ok();
  auto stream = riffle::kafka::Stream::Create(Options("bench-put"));
  if (!created || !stream.ok()) {
    state.SkipWithError("no stream");
    return;
  }
  const Records& records = TheRecords();
  for (auto _ : state) {
    for (int b = 0; b < kBatchesPerIteration; ++b) {
      if (!(*stream)->PutRecordsAsync(records.entries).ok()) state.SkipWithError("put");
      (*stream)->Poll();
    }
    if (!(*stream)->Flush().ok() || !(*stream)->last_error().ok()) state.SkipWithError("flush");
  }
  state.SetItemsProcessed(state.iterations() * kBatchesPerIteration * kBatch);
  state.SetBytesProcessed(state.iterations() * kBatchesPerIteration * kBatch * kRecordBytes);
}
BENCHMARK(BM_Kafka_PutRecords)->UseRealTime()->Unit(benchmark::kMillisecond);

std::atomic<uint64_t> peer_failures{0};
void CountFailures(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) peer_failures.fetch_add(1);
}

void BM_Peer_RdKafkaProduce(benchmark::State& state) {
  static const bool created = Cluster().CreateTopic("bench-peer-put", 4).ok();
  rd_kafka_t* rk = RawClient(RD_KAFKA_PRODUCER,
                             {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "5"}},
                             CountFailures);
  if (!created || rk == nullptr) {
    state.SkipWithError("no producer");
    return;
  }
  rd_kafka_topic_t* topic = rd_kafka_topic_new(rk, "bench-peer-put", nullptr);
  const Records& records = TheRecords();
  std::vector<int32_t> partitions;  // the partitions riffle routes the same keys to
  const riffle::UniformLayout layout(4);
  for (const std::string& key : records.keys) {
    partitions.push_back(layout.ShardIndex(riffle::Md5HashKey(key)));
  }
  for (auto _ : state) {
    for (int b = 0; b < kBatchesPerIteration; ++b) {
      for (std::size_t i = 0; i < kBatch; ++i) {
        const std::string& key = records.keys[i];
        const std::string& data = records.data[i];
        if (rd_kafka_producev(rk, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_PARTITION(partitions[i]),
                              RD_KAFKA_V_KEY(key.data(), key.size()),
                              RD_KAFKA_V_VALUE(const_cast<char*>(data.data()), data.size()),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY | RD_KAFKA_MSG_F_BLOCK),
                              RD_KAFKA_V_END) != RD_KAFKA_RESP_ERR_NO_ERROR) {
          peer_failures.fetch_add(1);
        }
      }
      rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, -1);
  }
  if (peer_failures.load() != 0) state.SkipWithError("delivery failures");
  state.SetItemsProcessed(state.iterations() * kBatchesPerIteration * kBatch);
  state.SetBytesProcessed(state.iterations() * kBatchesPerIteration * kBatch * kRecordBytes);
  rd_kafka_topic_destroy(topic);
  rd_kafka_destroy(rk);
}
BENCHMARK(BM_Peer_RdKafkaProduce)->UseRealTime()->Unit(benchmark::kMillisecond);

// One partition of kReadTopicRecords records, written once for both read benchmarks. The
// mock keeps about 5 MB per partition (it drops older records beyond that): the topic
// stays under it.
riffle::kafka::Stream* ReadStream() {
  static riffle::kafka::Stream* stream = []() -> riffle::kafka::Stream* {
    if (!Cluster().CreateTopic("bench-get", 1).ok()) return nullptr;
    auto s = riffle::kafka::Stream::Create(Options("bench-get"));
    if (!s.ok()) return nullptr;
    const Records& records = TheRecords();
    for (int64_t n = 0; n < kReadTopicRecords; n += kBatch) {
      if (!(*s)->PutRecordsAsync(records.entries).ok()) return nullptr;
      (*s)->Poll();
    }
    if (!(*s)->Flush().ok() || !(*s)->last_error().ok()) return nullptr;
    auto horizon = (*s)->GetShardIterator(
        {.shard_id = "shardId-000000000000", .type = riffle::ShardIteratorType::kTrimHorizon});
    if (!horizon.ok() || horizon->position != 0) return nullptr;  // the mock trimmed it
    return s->release();
  }();
  return stream;
}

using Seconds = std::chrono::duration<double>;

// Each iteration is a pass over the partition from its first record. Positioning a reader
// costs up to fetch.wait.max.ms (a fetch in flight at the end of the partition must return
// first), the same for both sides; both read one record first, and the time counted runs
// from there to the last record (the first one is not counted).
void BM_Kafka_GetRecords(benchmark::State& state) {
  riffle::kafka::Stream* stream = ReadStream();
  if (stream == nullptr) {
    state.SkipWithError("no stream");
    return;
  }
  riffle::GetRecordsResult result;
  uint64_t bytes = 0;
  int64_t counted = 0;
  int64_t calls = 0;
  for (auto _ : state) {
    auto it = stream->GetShardIterator(
        {.shard_id = "shardId-000000000000", .type = riffle::ShardIteratorType::kTrimHorizon});
    if (!it.ok()) {
      state.SkipWithError("GetShardIterator");
      return;
    }
    riffle::ShardIterator next = *it;
    int64_t read = 0;
    std::chrono::steady_clock::time_point start;
    while (read < kReadTopicRecords) {
      // One record first (the reader is positioned), then the timed reads.
      if (!stream->GetRecords(next, result, read == 0 ? 1 : 10000).ok()) {
        state.SkipWithError("GetRecords");
        return;
      }
      for (const riffle::Record& r : result.records) bytes += r.data.size();
      ++calls;
      if (read == 0 && !result.records.empty()) {
        start = std::chrono::steady_clock::now();
        counted -= static_cast<int64_t>(result.records.size());
      }
      read += static_cast<int64_t>(result.records.size());
      next = *result.next_shard_iterator;
    }
    counted += read;
    state.SetIterationTime(Seconds(std::chrono::steady_clock::now() - start).count());
  }
  benchmark::DoNotOptimize(bytes);
  state.SetItemsProcessed(counted);
  state.SetBytesProcessed(counted * static_cast<int64_t>(kRecordBytes));
  state.counters["records_per_call"] =
      static_cast<double>(state.iterations() * kReadTopicRecords) / static_cast<double>(calls);
}
BENCHMARK(BM_Kafka_GetRecords)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_Peer_RdKafkaConsume(benchmark::State& state) {
  if (ReadStream() == nullptr) {
    state.SkipWithError("no topic");
    return;
  }
  rd_kafka_t* rk = RawClient(RD_KAFKA_CONSUMER, {{"group.id", "bench-peer"},
                                                 {"enable.auto.commit", "false"},
                                                 {"enable.partition.eof", "false"},
                                                 {"fetch.wait.max.ms", "100"},
                                                 {"queued.max.messages.kbytes", "16384"}});
  rd_kafka_queue_t* queue = rd_kafka_queue_get_partition(rk, "bench-get", 0);
  rd_kafka_queue_forward(queue, nullptr);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, "bench-get", 0)->offset = 0;
  if (rd_kafka_error_t* error = rd_kafka_incremental_assign(rk, list)) {
    rd_kafka_error_destroy(error);
    state.SkipWithError("assign");
    return;
  }
  std::vector<rd_kafka_message_t*> messages(10000);
  std::string copy;  // reused, like a GetRecordsResult
  uint64_t bytes = 0;
  int64_t counted = 0;
  int64_t calls = 0;
  bool first_pass = true;
  for (auto _ : state) {
    if (!first_pass) {
      list->elems[0].offset = 0;
      if (rd_kafka_error_t* e = rd_kafka_seek_partitions(rk, list, 10000)) {
        rd_kafka_error_destroy(e);
        state.SkipWithError("seek");
        return;
      }
    }
    first_pass = false;
    int64_t read = 0;
    std::chrono::steady_clock::time_point start;
    while (read < kReadTopicRecords) {
      // One message first (the consumer is positioned), then what is there, or else wait
      // for one: a batch call with a timeout would wait for the whole batch.
      ssize_t n =
          read == 0 ? 0 : rd_kafka_consume_batch_queue(queue, 0, messages.data(), messages.size());
      if (n == 0) {
        messages[0] = rd_kafka_consume_queue(queue, 100);
        n = messages[0] != nullptr ? 1 : 0;
      }
      int64_t got = 0;
      ++calls;
      copy.clear();
      for (ssize_t i = 0; i < n; ++i) {
        rd_kafka_message_t* m = messages[static_cast<std::size_t>(i)];
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          // Copied out, as GetRecords does: records outlive the message.
          copy.append(static_cast<const char*>(m->key), m->key_len);
          copy.append(static_cast<const char*>(m->payload), m->len);
          bytes += m->len;
          ++got;
        }
        rd_kafka_message_destroy(m);
      }
      if (read == 0 && got > 0) {
        start = std::chrono::steady_clock::now();
        counted -= got;
      }
      read += got;
    }
    counted += read;
    state.SetIterationTime(Seconds(std::chrono::steady_clock::now() - start).count());
  }
  benchmark::DoNotOptimize(bytes);
  state.SetItemsProcessed(counted);
  state.SetBytesProcessed(counted * static_cast<int64_t>(kRecordBytes));
  state.counters["records_per_call"] =
      static_cast<double>(state.iterations() * kReadTopicRecords) / static_cast<double>(calls);
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_queue_destroy(queue);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}
BENCHMARK(BM_Peer_RdKafkaConsume)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace
