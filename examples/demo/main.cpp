// riffle-demo: producers put keyed records into a Stream while readers, each reading every
// shard (parents before children), verify per-key order and count what they got. With
// --reshard the stream splits and merges while producers run; with --out DIR a
// DeliveryStream fed by the stream writes the records into DIR laid out like a bucket.
// With --account the pipeline runs through a riffle::Account as code written for the service
// would (account_pipeline.h), and --limits adds the service's limits; --account --out DIR
// delivers through a KinesisStreamAsSource delivery stream of the account into a bucket
// backed by DIR, checked as the other --out runs are.
// A progress line shows the rates; a summary (and with --json, one JSON object as the last
// line) ends the run. The exit status is 0 when nothing was lost or reordered. With
// --kafka mock|HOST:PORT the same pipeline runs on a Kafka topic (kafka_pipeline.cpp).
#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "account_pipeline.h"
#include "delivered_files.h"
#include "fmt/format.h"
#include "kafka_pipeline.h"
#include "riffle/checkpoint_store.h"
#include "riffle/consumer.h"
#include "riffle/delivery_stream.h"
#include "riffle/lineage_reader.h"
#include "riffle/sink.h"
#include "riffle/stream.h"
#include "verifier.h"

namespace {

constexpr char kUsage[] =
    "usage: riffle-demo [--producers N] [--shards S] [--readers K] [--records R]\n"
    "                   [--record-bytes B] [--ring-bytes BYTES] [--reshard]\n"
    "                   [--efo-consumers E] [--kcl-consumers C]\n"
    "                   [--out DIR [--gzip]] [--load N] [--json] [--kafka mock|HOST:PORT]\n"
    "                   [--account [--limits]]\n"
    "  --account  run through an account: streams by name, puts by PutRecords with retries,\n"
    "             reads by iterator strings; with --out, a KinesisStreamAsSource delivery\n"
    "             stream of the account writes into a bucket backed by DIR\n"
    "  --limits   (implies --account) the service's limits: producers are throttled and retry\n"
    "             (default --records 20000 then)\n";

struct Flags {
  int producers = 2;
  int shards = 4;
  int readers = 2;        // polling readers (LineageReader)
  int efo_consumers = 2;  // riffle::Consumer over enhanced fan-out subscriptions
  int kcl_consumers = 1;  // riffle::Consumer polling with GetRecords
  uint64_t records = 1'000'000;
  std::size_t record_bytes = 100;
  uint64_t ring_bytes = 0;  // 0: large enough to retain the whole run
  int keys_per_producer = 64;
  bool reshard = false;
  std::string out;
  bool gzip = false;
  bool json = false;
  int load = 0;       // CPU-bound threads running beside the pipeline (a host busy with other work)
  std::string kafka;  // "mock" or bootstrap servers: the pipeline on a Kafka topic
  bool account = false;  // --account: through a riffle::Account
  bool limits = false;   // --limits: the account enforces the service's limits
  bool records_given = false;
};

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(stderr, "riffle-demo: %s\n%s", error.c_str(), kUsage);
  std::exit(2);
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto text = [&]() -> std::string {
      if (i + 1 >= argc) Usage(arg + " needs a value");
      return argv[++i];
    };
    auto number = [&]() -> long long {
      const std::string v = text();
      char* end = nullptr;
      const long long n = std::strtoll(v.c_str(), &end, 10);
      if (*end != '\0' || n < 0) Usage(arg + " needs a non-negative number");
      return n;
    };
    if (arg == "--producers")
      f.producers = static_cast<int>(number());
    else if (arg == "--shards")
      f.shards = static_cast<int>(number());
    else if (arg == "--readers")
      f.readers = static_cast<int>(number());
    else if (arg == "--efo-consumers")
      f.efo_consumers = static_cast<int>(number());
    else if (arg == "--kcl-consumers")
      f.kcl_consumers = static_cast<int>(number());
    else if (arg == "--records") {
      f.records = static_cast<uint64_t>(number());
      f.records_given = true;
    } else if (arg == "--account")
      f.account = true;
    else if (arg == "--limits")
      f.account = f.limits = true;
    else if (arg == "--record-bytes")
      f.record_bytes = static_cast<std::size_t>(number());
    else if (arg == "--ring-bytes")
      f.ring_bytes = static_cast<uint64_t>(number());
    else if (arg == "--reshard")
      f.reshard = true;
    else if (arg == "--out")
      f.out = text();
    else if (arg == "--gzip")
      f.gzip = true;
    else if (arg == "--json")
      f.json = true;
    else if (arg == "--load")
      f.load = static_cast<int>(number());
    else if (arg == "--kafka")
      f.kafka = text();
    else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      Usage("unknown flag " + arg);
    }
  }
  if (f.producers < 1 || f.shards < 1) Usage("--producers and --shards must be at least 1");
  if (f.record_bytes < 32) Usage("--record-bytes must be at least 32 (key, counter, filler)");
  if (f.gzip && f.out.empty()) Usage("--gzip needs --out DIR");
  if (!f.kafka.empty() && f.reshard) {
    Usage("--reshard is not available with --kafka: a topic's partitions cannot split or merge");
  }
  if (!f.kafka.empty() && !f.out.empty()) {
    Usage("--out is not available with --kafka: the demo delivers from the in-process stream");
  }
  if (!f.kafka.empty() && f.account) Usage("--account and --kafka are different pipelines");
  // At the service's 1,000 records/s per shard a million records take minutes.
  if (f.limits && !f.records_given) f.records = 20'000;
  return f;
}

uint64_t AutoRingBytes(const Flags& f) {
  // Room for every record of the run in each shard's share, with slack for uneven hashing.
  const uint64_t frame = riffle::detail::FrameBytes(16, f.record_bytes);
  const uint64_t per_shard =
      f.records * frame * 2 / static_cast<uint64_t>(f.shards) + (uint64_t{1} << 20);
  return std::max<uint64_t>(std::bit_ceil(per_shard), uint64_t{8} << 20);
}

void Die(const char* what, const absl::Status& s) {
  std::fprintf(stderr, "riffle-demo: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

// A polling reader of the whole stream, following lineage, until every write is done (the
// producers' and the resharder's) and it has caught up. Not the producers alone: while a
// reshard closes a parent (it waits for that parent's puts in flight), records already go
// to the children, which the reader reads once the parent's end is known; a poll in that
// window reads nothing, yet the reader has not caught up.
void PollingReader(riffle::Stream& stream, const std::atomic<bool>& writes_done,
                   demo::OrderVerifier& verifier, uint64_t* missed) {
  riffle::LineageReader reader(stream);
  for (;;) {
    const bool done = writes_done.load(std::memory_order_acquire);
    const size_t progressed = reader.Poll(
        [&](const auto&, const riffle::Record& r) { verifier.See(r.partition_key, r.data); });
    if (!reader.last_error().ok()) Die("GetRecords", reader.last_error());
    if (done && progressed == 0) break;
    if (progressed == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  *missed = reader.missed_records();
}

// A KCL-style record processor feeding one consumer's verifier; checkpoints every batch
// and at the end of a shard, as a processor must for the children to start.
class VerifyingProcessor : public riffle::RecordProcessor {
 public:
  explicit VerifyingProcessor(demo::OrderVerifier* verifier) : verifier_(verifier) {}
  void Initialize(std::string_view, std::string_view) override {}
  void ProcessRecords(const riffle::ProcessRecordsInput& input,
                      riffle::Checkpointer& checkpointer) override {
    for (const riffle::Record& r : input.records) verifier_->See(r.partition_key, r.data);
    (void)checkpointer.Checkpoint();
  }
  void ShardEnded(riffle::Checkpointer& checkpointer) override {
    if (absl::Status s = checkpointer.Checkpoint(); !s.ok()) Die("Checkpoint", s);
  }
  void Shutdown(riffle::ShutdownReason, riffle::Checkpointer&) override {}

 private:
  demo::OrderVerifier* verifier_;
};

// Splits and merges at random while the producers run: up to twice the initial shard
// count, at most 60 reshards, one every 10 ms.
int Resharder(riffle::Stream& stream, const std::atomic<bool>& producers_done, int shards) {
  std::mt19937_64 rng(42);
  int done = 0;
  while (!producers_done.load() && done < 60) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto listed = stream.ListShards({.filter = riffle::ShardFilterType::kAtLatest});
    if (!listed.ok() || listed->empty()) continue;
    std::vector<riffle::Shard>& open = *listed;
    std::sort(open.begin(), open.end(), [](const auto& a, const auto& b) {
      return a.hash_key_range.starting_hash_key < b.hash_key_range.starting_hash_key;
    });
    absl::Status s;
    if (static_cast<int>(open.size()) < 2 * shards && (rng() % 2 == 0 || open.size() < 2)) {
      const riffle::Shard& victim = open[rng() % open.size()];
      const riffle::HashKey start = victim.hash_key_range.starting_hash_key;
      const riffle::HashKey mid = start + (victim.hash_key_range.ending_hash_key - start) / 2;
      s = stream.SplitShard(victim.shard_id, riffle::FormatHashKey(mid));
    } else {
      const std::size_t i = rng() % (open.size() - 1);
      s = stream.MergeShards(open[i].shard_id, open[i + 1].shard_id);
    }
    if (s.ok()) ++done;
  }
  return done;
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  if (!flags.kafka.empty()) {
    return demo::RunKafkaPipeline({.kafka = flags.kafka,
                                   .producers = flags.producers,
                                   .shards = flags.shards,
                                   .readers = flags.readers,
                                   .efo_consumers = flags.efo_consumers,
                                   .kcl_consumers = flags.kcl_consumers,
                                   .records = flags.records,
                                   .record_bytes = flags.record_bytes,
                                   .keys_per_producer = flags.keys_per_producer,
                                   .json = flags.json});
  }
  riffle::StreamOptions options;
  options.stream_name = "riffle-demo";
  options.shard_count = flags.shards;
  options.ring_capacity_bytes = flags.ring_bytes != 0 ? flags.ring_bytes : AutoRingBytes(flags);
  options.max_record_size_bytes = std::max<uint64_t>(flags.record_bytes + 64, 4096);
  std::unique_ptr<demo::AccountPipeline> pipeline;  // --account
  std::unique_ptr<riffle::Stream> own_stream;
  if (flags.account) {
    pipeline = std::make_unique<demo::AccountPipeline>(options.stream_name, flags.shards, options,
                                                       flags.limits);
  } else {
    auto created = riffle::Stream::Create(options);
    if (!created.ok()) Die("Create", created.status());
    own_stream = *std::move(created);
  }
  riffle::Stream& stream = pipeline ? pipeline->stream() : *own_stream;

  // The delivery stream reads from LATEST as of its creation: create it before any put.
  std::unique_ptr<riffle::FileSink> sink;
  std::unique_ptr<riffle::DeliveryStream> own_delivery;
  riffle::DeliveryStream* delivery = nullptr;
  if (!flags.out.empty()) {
    std::error_code ec;
    if (std::filesystem::exists(flags.out, ec) && !std::filesystem::is_empty(flags.out, ec)) {
      Usage("--out " + flags.out + " must be empty or missing (the demo checks what it wrote)");
    }
  }
  if (!flags.out.empty() && pipeline) {
    // Through the account: a KinesisStreamAsSource delivery stream into a bucket on DIR.
    delivery = pipeline->DeliverToBucket("riffle-demo-delivery", flags.out, flags.gzip);
  } else if (!flags.out.empty()) {
    auto s = riffle::FileSink::Create({.directory = flags.out});
    if (!s.ok()) Die("FileSink", s.status());
    sink = *std::move(s);
    riffle::DeliveryStreamOptions d;
    d.delivery_stream_name = "riffle-demo-delivery";
    d.source = riffle::StreamSource{&stream};
    d.sink = sink.get();
    d.buffering_hints = {.size_in_mbs = 4, .interval_in_seconds = 1};
    d.compression =
        flags.gzip ? riffle::CompressionFormat::kGzip : riffle::CompressionFormat::kUncompressed;
    d.append_newline_delimiter = true;
    auto ds = riffle::DeliveryStream::Create(std::move(d));
    if (!ds.ok()) Die("DeliveryStream", ds.status());
    own_delivery = *std::move(ds);
    delivery = own_delivery.get();
    if (absl::Status st = delivery->Start(); !st.ok()) Die("Start", st);
  }

  std::atomic<bool> producers_done{false};  // stops the resharder
  std::atomic<bool> writes_done{false};     // producers and resharder: stops the readers
  std::atomic<uint64_t> put{0}, put_errors{0};
  std::vector<std::unique_ptr<demo::OrderVerifier>> verifiers;
  std::vector<uint64_t> missed(static_cast<std::size_t>(flags.readers), 0);
  std::vector<std::thread> readers;
  for (int r = 0; r < flags.readers; ++r) {
    verifiers.push_back(
        std::make_unique<demo::OrderVerifier>(flags.producers, flags.keys_per_producer));
    uint64_t* reader_missed = &missed[static_cast<std::size_t>(r)];
    if (pipeline) {
      readers.emplace_back([&, v = verifiers.back().get(), reader_missed] {
        pipeline->Read(writes_done, *v, reader_missed);
      });
      continue;
    }
    readers.emplace_back(PollingReader, std::ref(stream), std::cref(writes_done),
                         std::ref(*verifiers.back()), reader_missed);
  }

  // Consumers (each reads the whole stream on a thread of its own, following lineage).
  struct ConsumerRun {
    std::string name;
    std::unique_ptr<demo::OrderVerifier> verifier;
    std::unique_ptr<riffle::Consumer> consumer;
  };
  riffle::InMemoryCheckpointStore checkpoints;
  std::vector<ConsumerRun> consumers;
  auto add_consumer = [&](std::string name, riffle::ConsumerMode mode) {
    ConsumerRun run{name,
                    std::make_unique<demo::OrderVerifier>(flags.producers, flags.keys_per_producer),
                    nullptr};
    demo::OrderVerifier* verifier = run.verifier.get();
    auto c = riffle::Consumer::Create({.stream = &stream,
                                       .application_name = name,
                                       .mode = mode,
                                       .checkpoint_store = &checkpoints,
                                       .lease_refresh_interval = absl::Milliseconds(10),
                                       .max_records = 1000,
                                       .processor_factory = [verifier] {
                                         return std::make_unique<VerifyingProcessor>(verifier);
                                       }});
    if (!c.ok()) Die("Consumer", c.status());
    run.consumer = *std::move(c);
    if (absl::Status st = run.consumer->Start(); !st.ok()) Die("Consumer Start", st);
    consumers.push_back(std::move(run));
  };
  for (int i = 0; i < flags.efo_consumers; ++i) {
    add_consumer(fmt::format("efo-{}", i), riffle::ConsumerMode::kEnhancedFanOut);
  }
  for (int i = 0; i < flags.kcl_consumers; ++i) {
    add_consumer(fmt::format("kcl-{}", i), riffle::ConsumerMode::kPolling);
  }

  // --load: threads that only burn CPU, as a host's other work would (a compiler, a game's
  // simulation): the pipeline then has fewer cores than threads.
  std::atomic<bool> load_done{false};
  std::vector<std::thread> load;
  for (int i = 0; i < flags.load; ++i) {
    load.emplace_back([&load_done, i] {
      uint64_t x = 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(i);
      while (!load_done.load(std::memory_order_relaxed)) {
        for (int k = 0; k < 1000; ++k) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      }
      if (x == 42) std::fputs("", stderr);  // keeps the loop from being optimized away
    });
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> producers;
  for (int p = 0; p < flags.producers; ++p) {
    producers.emplace_back([&, p] {
      const uint64_t share = flags.records / static_cast<uint64_t>(flags.producers) +
                             (static_cast<uint64_t>(p) < flags.records % flags.producers ? 1 : 0);
      if (pipeline) {
        pipeline->Produce(p, share, flags.keys_per_producer, flags.record_bytes, put, put_errors);
        return;
      }
      std::vector<std::string> keys;
      for (int k = 0; k < flags.keys_per_producer; ++k) keys.push_back(demo::KeyName(p, k));
      std::vector<uint64_t> counters(keys.size(), 0);
      std::string data;
      for (uint64_t i = 0; i < share; ++i) {
        const std::size_t k = i % keys.size();
        data = demo::MakeData(keys[k], counters[k], flags.record_bytes);
        if (stream.PutRecord(keys[k], data).ok()) {
          ++counters[k];
          put.fetch_add(1, std::memory_order_relaxed);
        } else {
          put_errors.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  int reshards = 0;
  std::thread resharder;
  if (flags.reshard) {
    resharder = std::thread([&] {
      reshards = pipeline ? pipeline->Reshard(producers_done, flags.shards)
                          : Resharder(stream, producers_done, flags.shards);
    });
  }

  std::atomic<bool> all_done{false};
  std::thread progress([&] {
    uint64_t last_put = 0;
    auto last = std::chrono::steady_clock::now();
    while (!all_done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      const auto now = std::chrono::steady_clock::now();
      const uint64_t p = put.load();
      const double secs = std::chrono::duration<double>(now - last).count();
      uint64_t read = 0;
      for (const auto& v : verifiers) read += v->records();
      for (const auto& c : consumers) read += c.verifier->records();
      const uint64_t delivered = delivery ? delivery->GetMetrics().delivery_records : 0;
      std::fprintf(
          stderr, "\r  put %10llu (%6.2f M/s)  read %10llu by %d readers  delivered %10llu ",
          static_cast<unsigned long long>(p), (p - last_put) / secs / 1e6,
          static_cast<unsigned long long>(read), flags.readers + static_cast<int>(consumers.size()),
          static_cast<unsigned long long>(delivered));
      last_put = p;
      last = now;
    }
    std::fprintf(stderr, "\n");
  });

  for (auto& t : producers) t.join();
  const double put_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  producers_done.store(true, std::memory_order_release);
  if (resharder.joinable()) resharder.join();
  writes_done.store(true, std::memory_order_release);
  for (auto& t : readers) t.join();
  const uint64_t records_put = put.load();
  // Consumers run on their own threads: wait until each has everything, or stops moving.
  for (auto& c : consumers) {
    uint64_t last = 0;
    for (int still = 0; c.verifier->records() < records_put && still < 2000; ++still) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (c.verifier->records() != last) still = 0;
      last = c.verifier->records();
    }
    c.consumer->Stop();
  }

  demo::DeliveredFiles files;
  riffle::DeliveryStreamMetrics metrics;
  if (delivery) {
    // Close() delivers what was read; wait until the source has read everything.
    for (int i = 0; i < 60'000; ++i) {
      metrics = delivery->GetMetrics();
      if (metrics.incoming_records + metrics.source_records_missed >= records_put) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (absl::Status s = delivery->Close(); !s.ok()) Die("Close", s);
    metrics = delivery->GetMetrics();
    files = demo::ReadDelivered(flags.out);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  load_done.store(true);
  for (auto& t : load) t.join();
  all_done.store(true);
  progress.join();

  demo::Outcome outcome;
  outcome.corrupt = files.corrupt;
  for (int r = 0; r < flags.readers; ++r) {
    outcome.Add(fmt::format("poller-{}", r), *verifiers[static_cast<std::size_t>(r)], records_put,
                missed[static_cast<std::size_t>(r)]);
  }
  for (const auto& c : consumers) outcome.Add(c.name, *c.verifier, records_put);
  if (delivery) {
    outcome.lost += records_put > files.unique_records ? records_put - files.unique_records : 0;
  }

  std::printf("riffle-demo: %d producers, %d shards, %d readers, %zu-byte records%s\n",
              flags.producers, flags.shards, static_cast<int>(outcome.records_read.size()),
              flags.record_bytes,
              flags.reshard ? fmt::format(", {} reshards", reshards).c_str() : "");
  std::printf("  put      %llu records in %.2f s (%.2f M records/s), %llu put errors\n",
              static_cast<unsigned long long>(records_put), put_seconds,
              records_put / put_seconds / 1e6, static_cast<unsigned long long>(put_errors.load()));
  outcome.PrintReaders();
  if (delivery) {
    std::printf(
        "  delivery wrote %llu records (%llu distinct) in %llu objects to %s%s, %llu to the "
        "error output\n",
        static_cast<unsigned long long>(files.records),
        static_cast<unsigned long long>(files.unique_records),
        static_cast<unsigned long long>(files.objects), flags.out.c_str(),
        flags.gzip ? " (gzip)" : "", static_cast<unsigned long long>(metrics.error_output_records));
  }
  if (pipeline) {
    std::printf(
        "  account  %s; %llu entries refused (throttled or failed), %llu put calls retried\n",
        flags.limits ? "the service's limits" : "no limits",
        static_cast<unsigned long long>(pipeline->refused_entries()),
        static_cast<unsigned long long>(pipeline->retried_calls()));
  }
  outcome.PrintVerdict(seconds);
  if (flags.json) {
    std::string out =
        "{" + outcome.JsonFields(records_put, put_errors.load(), flags.producers, flags.shards,
                                 flags.record_bytes, reshards, seconds, put_seconds);
    out += fmt::format(",\"load_threads\":{}", flags.load);
    if (delivery) {
      out += fmt::format(",\"delivered_records\":{},\"delivered_objects\":{},\"error_records\":{}",
                         files.records, files.objects, metrics.error_output_records);
    }
    if (pipeline) {
      out +=
          fmt::format(",\"account\":true,\"limits\":{},\"refused_entries\":{},\"retried_calls\":{}",
                      flags.limits, pipeline->refused_entries(), pipeline->retried_calls());
    }
    std::printf("%s}\n", out.c_str());
  }
  return outcome.ok() ? 0 : 1;
}
