// What the Consumer's source files share: the state of one leased shard, and how the
// application's code is called. Internal to riffle.
#ifndef RIFFLE_CONSUMER_CONSUMER_INTERNAL_H_
#define RIFFLE_CONSUMER_CONSUMER_INTERNAL_H_

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "consumer/lineage.h"
#include "fmt/format.h"
#include "riffle/consumer.h"
#include "riffle/status.h"

namespace riffle {

// One leased shard being processed.
struct ShardTask {
  std::string shard_id;
  std::unique_ptr<RecordProcessor> processor;
  std::optional<std::string> checkpoint;         // where processing started, then the newest
  std::optional<SequenceNumber> last_delivered;  // newest record handed to the processor
  // With a deaggregator: the sub-sequence number of the last user record delivered when it
  // came from the aggregate last_delivered names (nullopt: none did).
  std::optional<uint64_t> last_sub;
  bool after_parents = false;                  // a child of shards this application processed
  std::optional<SequenceNumber> first_record;  // the shard's StartingSequenceNumber
  HashKeyRange range;                          // the shard's, for de-aggregation
  bool at_shard_end = false;                   // during ShardEnded
  bool lease_lost = false;                     // during Shutdown(kLeaseLost)
  bool lease_taken = false;         // a checkpoint found another owner: dropped after this batch
  bool ended = false;               // ShardEnded was called
  bool ended_checkpointed = false;  // and it checkpointed SHARD_END
  bool blocked = false;  // an unusable checkpoint under kReport: retried at lease refresh
  int64_t throttled_until_ms = INT64_MIN;
  // During ProcessRecords: the Kinesis records of the batch, which a checkpoint may name
  // without asking the stream.
  std::span<const Record> batch;
  // Polling.
  std::optional<detail::ShardCursor> cursor;
  GetRecordsResult result;
  uint64_t missed_seen = 0;  // cursor misses already delivered
  // Fan-out.
  std::unique_ptr<Subscription> subscription;
  std::optional<SequenceNumber> continuation;
  bool resubscribe = false;
  int64_t subscribe_after_ms = INT64_MIN;
  int delivered = 0;
  // De-aggregation: the user records of the batch being delivered, and when processing
  // resumed inside an aggregate (a SubRecordCheckpoint), that aggregate and the last
  // sub-sequence number already processed.
  std::vector<UserRecord> user_records;
  std::vector<Record> user_views;
  std::optional<std::pair<SequenceNumber, uint64_t>> skip_through;
};

namespace detail {

// The consumer whose processor callback this thread runs (nullptr: none). Stop() from
// inside a callback is deferred: stopping at once would free the ShardTask it runs for.
extern thread_local const Consumer* t_in_callback;

// Runs the application's code (`what`: "RecordProcessor::ProcessRecords", ...) for
// `consumer`. What it throws is reported (Consumer::last_error) instead of leaving Poll() or
// ending the consumer's thread, as the KCL logs a processor's exception and goes on. False
// when it threw.
template <typename Fn>
bool CallProcessor(const Consumer* consumer, absl::Status& error, std::string_view what,
                   std::string_view shard_id, Fn&& fn) {
  const Consumer* const outer = std::exchange(t_in_callback, consumer);
  bool ok = false;
  try {
    fn();
    ok = true;
  } catch (const std::exception& e) {
    error = InternalFailureError(fmt::format("{} of shard {} threw: {}", what, shard_id, e.what()));
  } catch (...) {
    error = InternalFailureError(
        fmt::format("{} of shard {} threw a non-standard exception.", what, shard_id));
  }
  t_in_callback = outer;
  return ok;
}

// The checkpoints of a new application's start shards (StartNewApplication), and a store's
// "nothing processed yet" (checkpoint_store.h): a position, not a record.
inline bool IsPositionCheckpoint(const std::optional<std::string>& checkpoint) {
  return checkpoint == kLatestCheckpoint || checkpoint == kAtTimestampCheckpoint ||
         checkpoint == kTrimHorizonCheckpoint;
}

}  // namespace detail
}  // namespace riffle

#endif  // RIFFLE_CONSUMER_CONSUMER_INTERNAL_H_
