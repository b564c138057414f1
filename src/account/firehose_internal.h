// What the Firehose operations share (src/account/firehose_*.cc): the delivery streams of
// an account, each a riffle::DeliveryStream with what the service keeps beside it (type,
// source, destination description, lifecycle, tags, the DirectPut rates).
//
// Thread safety: the registry's mutex guards its map and each entry's tags and rates; the
// DeliveryStream guards itself. Entries are shared: a caller that found one may use it
// after the lock is released, and the last holder destroys it (its DeliveryStream Close()s).
#ifndef RIFFLE_ACCOUNT_FIREHOSE_INTERNAL_H_
#define RIFFLE_ACCOUNT_FIREHOSE_INTERNAL_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "account/account_core.h"
#include "account/s3_internal.h"
#include "common/validation.h"
#include "riffle/delivery_stream.h"
#include "riffle/detail/token_bucket.h"
#include "riffle/firehose_types.h"
#include "riffle/kpl.h"
#include "riffle/stream.h"

namespace riffle::detail {

// The DirectPut rates per delivery stream (limits on): the region's quota.
struct FirehoseRates {
  uint64_t records_per_second;
  uint64_t requests_per_second;
  uint64_t bytes_per_second;
};
FirehoseRates FirehoseRatesFor(std::string_view region);

struct DeliveryStreamEntry {
  std::string name;
  std::string arn;
  DeliveryStreamType type = DeliveryStreamType::kDirectPut;
  int64_t created_ms = 0;
  int64_t active_at_ms = 0;                       // CREATING before it
  std::atomic<int64_t> deleted_at_ms{INT64_MAX};  // DELETING until it, then gone
  bool own_thread = false;
  std::optional<KinesisStreamSourceDescription> source;
  ExtendedS3DestinationDescription destination;  // registry's mutex: UpdateDestination
  // Held by UpdateDestination from reading the destination to describing the new one, so
  // that concurrent updates apply and describe in one order (taken before the registry's).
  std::mutex update_mu;

  // What the DeliveryStream uses, kept alive until it is gone (declared before it, so that
  // it is destroyed first).
  std::shared_ptr<BucketStore> bucket;  // guarded by the registry's mutex once created
  std::shared_ptr<Stream> source_stream;
  std::unique_ptr<RecordSource> paced_source;  // limits on: source_stream, paced
  std::unique_ptr<DeliveryStream> stream;

  // Guarded by the registry's mutex.
  std::map<std::string, std::string> tags;
  int64_t last_update_ms = INT64_MIN;  // INT64_MIN: never updated
  TokenBucket records;
  TokenBucket requests;
  TokenBucket bytes;

  // Its deletion finished: gone for every call (a control-plane call removes it later).
  bool GoneAt(int64_t now_ms) const {
    return deleted_at_ms.load(std::memory_order_acquire) <= now_ms;
  }
  DeliveryStreamStatus StatusAt(int64_t now_ms) const {
    if (deleted_at_ms.load(std::memory_order_acquire) != INT64_MAX) {
      return DeliveryStreamStatus::kDeleting;
    }
    return now_ms < active_at_ms ? DeliveryStreamStatus::kCreating : DeliveryStreamStatus::kActive;
  }
};

struct FirehoseRegistry {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<DeliveryStreamEntry>, std::less<>> streams;  // by name
  // The entry named `name`, or nullptr also when it is gone at now_ms. REQUIRES mu.
  std::shared_ptr<DeliveryStreamEntry> FindLive(std::string_view name, int64_t now_ms) const {
    auto it = streams.find(name);
    return it == streams.end() || it->second->GoneAt(now_ms) ? nullptr : it->second;
  }
  // Firehose de-aggregates KPL aggregates read from a Kinesis source before delivery.
  kpl::Deaggregator deaggregator;
  // Where Poll() starts its round of the delivery streams: it moves every call, so that
  // streams sharing a source shard's read limit take turns at being first. Guarded by mu.
  size_t poll_start = 0;
};

// The Tag members' constraints (lengths in characters, the API's patterns), recorded in `v`.
void CheckFirehoseTagKey(std::string_view key, std::string_view member, Violations& v);
void CheckFirehoseTagValue(std::string_view value, std::string_view member, Violations& v);

// ResourceNotFoundException "Firehose <name> under account <id> not found."
absl::Status DeliveryStreamNotFound(std::string_view name, std::string_view account_id);

// The control-plane call rates of Firehose (limits on): LimitExceededException.
absl::Status CheckFirehoseCallRate(AccountCore& core, std::string_view operation);

// Rate (limits on), then faults, for a call on the delivery stream `name`.
absl::Status AdmitFirehose(AccountCore& core, std::string_view operation, std::string_view name,
                           std::string_view arn);

}  // namespace riffle::detail

#endif  // RIFFLE_ACCOUNT_FIREHOSE_INTERNAL_H_
