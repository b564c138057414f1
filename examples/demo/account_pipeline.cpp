#include "account_pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "riffle/status.h"

namespace demo {
namespace {

[[noreturn]] void Die(const char* what, const absl::Status& s) {
  std::fprintf(stderr, "riffle-demo: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

// What a client of the service retries: throttles, and the service's own failures.
bool Retryable(const absl::Status& s) {
  return riffle::IsProvisionedThroughputExceededException(s) ||
         riffle::IsLimitExceededException(s) || riffle::IsInternalFailure(s) ||
         riffle::HasErrorName(s, riffle::kServiceUnavailable) ||
         riffle::HasErrorName(s, riffle::kKMSThrottlingException);
}

void Sleep(std::chrono::microseconds d) { std::this_thread::sleep_for(d); }

}  // namespace

AccountPipeline::AccountPipeline(const std::string& name, int shards,
                                 const riffle::StreamOptions& defaults, bool limits)
    : name_(name) {
  riffle::AccountOptions options;
  options.enforce_limits = limits;
  options.stream_defaults = defaults;
  auto account = riffle::Account::Create(std::move(options));
  if (!account.ok()) Die("Account", account.status());
  account_ = *std::move(account);
  if (absl::Status s =
          account_->kinesis().CreateStream({.stream_name = name_, .shard_count = shards});
      !s.ok()) {
    Die("CreateStream", s);
  }
  stream_ = account_->kinesis().FindStream(name_);
}

riffle::DeliveryStream* AccountPipeline::DeliverToBucket(const std::string& delivery_name,
                                                         const std::string& directory, bool gzip) {
  constexpr std::string_view kBucket = "riffle-demo-out";
  if (auto s = account_->s3().CreateBucket({.bucket = kBucket, .directory = directory}); !s.ok()) {
    Die("CreateBucket", s.status());
  }
  const std::string stream_arn = account_->StreamArn(name_);
  const std::string bucket_arn = riffle::S3::BucketArn(kBucket);
  riffle::CreateDeliveryStreamInput in{
      .delivery_stream_name = delivery_name,
      .delivery_stream_type = riffle::DeliveryStreamType::kKinesisStreamAsSource,
      .kinesis_stream_source_configuration =
          riffle::KinesisStreamSourceConfiguration{.kinesis_stream_arn = stream_arn},
      .extended_s3_destination_configuration =
          riffle::ExtendedS3DestinationConfiguration{
              .bucket_arn = bucket_arn,
              .buffering_hints = riffle::BufferingHints{.size_in_mbs = 4, .interval_in_seconds = 1},
              .compression_format = gzip ? "GZIP" : "UNCOMPRESSED",
              .processing_configuration = {.enabled = true, .append_delimiter_to_record = true}},
      .own_thread = true};
  if (auto s = account_->firehose().CreateDeliveryStream(in); !s.ok()) {
    Die("CreateDeliveryStream", s.status());
  }
  return account_->firehose().FindDeliveryStream(delivery_name);
}

void AccountPipeline::Produce(int producer, uint64_t share, int keys_per_producer,
                              std::size_t record_bytes, std::atomic<uint64_t>& put,
                              std::atomic<uint64_t>& put_errors) {
  riffle::Kinesis& kinesis = account_->kinesis();
  const auto keys_n = static_cast<uint64_t>(keys_per_producer);
  std::vector<std::string> keys;
  std::vector<uint64_t> total;  // records of each key
  for (int k = 0; k < keys_per_producer; ++k) {
    keys.push_back(KeyName(producer, k));
    total.push_back(share / keys_n + (static_cast<uint64_t>(k) < share % keys_n ? 1 : 0));
  }
  std::vector<uint64_t> next(keys.size(), 0);
  std::vector<std::string> data(keys.size());
  std::vector<riffle::PutRecordsRequestEntry> batch;
  std::vector<std::size_t> key_of;
  riffle::PutRecordsOutput out;  // reused: no allocation per entry
  int backoff = 0;
  for (;;) {
    batch.clear();
    key_of.clear();
    for (std::size_t k = 0; k < keys.size(); ++k) {
      if (next[k] == total[k]) continue;
      data[k] = MakeData(keys[k], next[k], record_bytes);
      batch.push_back({keys[k], data[k], {}});
      key_of.push_back(k);
    }
    if (batch.empty()) return;
    absl::Status s = kinesis.PutRecords({.stream_name = name_, .records = batch}, out);
    bool refused = !s.ok();
    if (!s.ok() && !Retryable(s)) {
      put_errors.fetch_add(batch.size(), std::memory_order_relaxed);
      Die("PutRecords", s);
    }
    if (s.ok()) {
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (out.records[i].error_code.empty()) {
          ++next[key_of[i]];
          put.fetch_add(1, std::memory_order_relaxed);
        } else {
          refused = true;
          refused_.fetch_add(1, std::memory_order_relaxed);
        }
      }
    }
    if (refused) {
      // Exponential backoff, as the SDKs do: 1 ms doubling, at most 256 ms.
      retried_.fetch_add(1, std::memory_order_relaxed);
      Sleep(std::chrono::milliseconds(1 << std::min(backoff, 8)));
      ++backoff;
    } else {
      backoff = 0;
    }
  }
}

void AccountPipeline::Read(const std::atomic<bool>& writes_done, OrderVerifier& verifier,
                           uint64_t* missed) {
  riffle::Kinesis& kinesis = account_->kinesis();
  struct Cursor {
    std::vector<std::string> parents;
    std::string iterator;
    std::optional<riffle::SequenceNumber> last;
    bool started = false;
    bool ended = false;
  };
  std::map<std::string, Cursor> shards;  // by id: parents come before their children
  auto list = [&]() -> bool {
    auto listed = kinesis.ListShards({.stream_name = name_});
    if (!listed.ok()) {
      if (Retryable(listed.status())) return false;
      Die("ListShards", listed.status());
    }
    for (const riffle::Shard& s : listed->shards) {
      if (shards.count(s.shard_id) != 0) continue;
      Cursor c;
      for (const auto& p : {s.parent_shard_id, s.adjacent_parent_shard_id}) {
        if (p) c.parents.push_back(*p);
      }
      shards.emplace(s.shard_id, std::move(c));
    }
    return true;
  };
  // Where a shard's reading (re)starts: after the last record read, or its beginning.
  auto start = [&](const std::string& id, Cursor& c) -> absl::Status {
    const std::string last = c.last ? c.last->ToString() : std::string();
    auto it = kinesis.GetShardIterator(
        {.stream_name = name_,
         .shard_id = id,
         .shard_iterator_type = c.last ? riffle::ShardIteratorType::kAfterSequenceNumber
                                       : riffle::ShardIteratorType::kTrimHorizon,
         .starting_sequence_number = last});
    if (!it.ok()) return it.status();
    c.iterator = it->shard_iterator;
    c.started = true;
    return absl::OkStatus();
  };
  riffle::GetRecordsOutput out;  // reused: no allocation in steady state
  auto listed_at = std::chrono::steady_clock::now();
  (void)list();
  int quiet_passes = 0;
  for (;;) {
    const bool done = writes_done.load(std::memory_order_acquire);
    uint64_t progressed = 0;
    bool throttled = false;
    bool ended_one = false;
    for (auto& [id, c] : shards) {
      if (c.ended) continue;
      if (!c.started) {
        const bool ready =
            std::all_of(c.parents.begin(), c.parents.end(), [&](const std::string& p) {
              auto it = shards.find(p);
              return it == shards.end() || it->second.ended;  // an unlisted parent has expired
            });
        if (!ready) continue;
        if (absl::Status s = start(id, c); !s.ok()) {
          if (!Retryable(s)) Die("GetShardIterator", s);
          throttled = true;
          continue;
        }
      }
      absl::Status s = kinesis.GetRecords({.shard_iterator = c.iterator}, out);
      if (riffle::IsExpiredIteratorException(s)) {
        c.started = false;  // restarted after the last record read
        continue;
      }
      if (!s.ok()) {
        if (!Retryable(s)) Die("GetRecords", s);
        throttled = true;
        continue;
      }
      for (const riffle::Record& r : out.result.records) {
        verifier.See(r.partition_key, r.data);
        c.last = r.sequence_number;
      }
      *missed += out.result.missed_records;
      progressed += out.result.records.size();
      if (out.next_shard_iterator.empty()) {
        c.ended = true;
        ended_one = true;
      } else {
        c.iterator = out.next_shard_iterator;
      }
    }
    const auto now = std::chrono::steady_clock::now();
    if (ended_one || (progressed == 0 && now - listed_at > std::chrono::milliseconds(50))) {
      if (list()) listed_at = now;
    }
    if (done && progressed == 0 && !throttled && !ended_one) {
      if (++quiet_passes >= 3) return;
    } else {
      quiet_passes = 0;
    }
    if (throttled) {
      Sleep(std::chrono::milliseconds(20));
    } else if (progressed == 0) {
      Sleep(std::chrono::microseconds(200));
    }
  }
}

int AccountPipeline::Reshard(const std::atomic<bool>& producers_done, int shards) {
  riffle::Kinesis& kinesis = account_->kinesis();
  std::mt19937_64 rng(42);
  int done = 0;
  while (!producers_done.load() && done < 60) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto listed = kinesis.ListShards(
        {.stream_name = name_,
         .shard_filter = riffle::ShardFilter{riffle::ShardFilterType::kAtLatest}});
    if (!listed.ok() || listed->shards.empty()) continue;
    std::vector<riffle::Shard>& open = listed->shards;
    std::sort(open.begin(), open.end(), [](const auto& a, const auto& b) {
      return a.hash_key_range.starting_hash_key < b.hash_key_range.starting_hash_key;
    });
    absl::Status s;
    if (static_cast<int>(open.size()) < 2 * shards && (rng() % 2 == 0 || open.size() < 2)) {
      const riffle::Shard& victim = open[rng() % open.size()];
      const riffle::HashKey start = victim.hash_key_range.starting_hash_key;
      const riffle::HashKey mid = start + (victim.hash_key_range.ending_hash_key - start) / 2;
      const std::string key = riffle::FormatHashKey(mid);
      s = kinesis.SplitShard(
          {.stream_name = name_, .shard_to_split = victim.shard_id, .new_starting_hash_key = key});
    } else {
      const std::size_t i = rng() % (open.size() - 1);
      s = kinesis.MergeShards({.stream_name = name_,
                               .shard_to_merge = open[i].shard_id,
                               .adjacent_shard_to_merge = open[i + 1].shard_id});
    }
    if (s.ok()) ++done;
  }
  return done;
}

}  // namespace demo
