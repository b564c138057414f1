// LineageReader: reads every shard of a stream the way the service asks consumers to: a
// shard only after its parents (both, after a merge) have been read to their end. That is
// what keeps the records of one key in order across splits and merges.
//
//   riffle::LineageReader reader(*stream);
//   while (reader.Poll([&](const auto& shard, const riffle::Record& r) { ... }) > 0) {}
//
// The shards of the first listing start at `initial_position` (TRIM_HORIZON by default;
// at LATEST the ones closed then are not read, as they hold only what was put before);
// a shard met later, once its parents were read, starts at its first record, and
// everything trimmed before the reader got there counts in missed_records(). Works over
// any RecordSource (riffle::Stream, or another backend).
//
// Thread safety: one thread per reader (the source itself may be used from any thread).
// For checkpoints, leases and several workers, use Consumer instead.
#ifndef RIFFLE_LINEAGE_READER_H_
#define RIFFLE_LINEAGE_READER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "riffle/record_source.h"
#include "riffle/user_record.h"

namespace riffle {

struct LineageReaderOptions {
  // Where shards that have no parent to wait for start. TRIM_HORIZON (default), LATEST or
  // AT_TIMESTAMP (with `timestamp`).
  ShardIteratorType initial_position = ShardIteratorType::kTrimHorizon;
  std::optional<absl::Time> timestamp{};
  // Records per GetRecords call, 1..10,000. Default 1,000.
  int limit = 1000;
  // Not owned; must outlive the reader. When set (for KPL aggregates, a
  // riffle::kpl::Deaggregator), handlers see user records, each shard's checked against
  // its range. Default nullptr: records as they were put.
  const UserRecordDecoder* deaggregator = nullptr;
};

class LineageReader {
 public:
  struct ShardInfo {
    std::string shard_id;
    HashKeyRange range;
    std::vector<std::string> parents;  // those that must be read to their end first
  };
  using RecordHandler = absl::FunctionRef<void(const ShardInfo&, const Record&)>;
  using UserRecordHandler = absl::FunctionRef<void(const ShardInfo&, const UserRecord&)>;

  // REQUIRES: `source` outlives the reader. The shards are listed at the first Poll().
  explicit LineageReader(RecordSource& source, LineageReaderOptions options = {});
  ~LineageReader();
  LineageReader(const LineageReader&) = delete;
  LineageReader& operator=(const LineageReader&) = delete;

  // One pass over every readable shard; `on_record(const ShardInfo&, const Record&)` sees
  // each record once, in shard order (with a deaggregator, each user record). Returns the
  // progress made: records read plus shards started and finished (0: nothing to do now).
  // 0 is not "caught up" while a reshard is under way: a child takes records as soon as it
  // is created, and is read once its parent's end is known, which the reshard fixes only
  // after the parent's puts in flight commit (waiting() counts such children). An error
  // (throttling, a bad option) is kept in last_error() and the pass goes on with the other shards.
  template <typename F>
  size_t Poll(F&& on_record) {
    const RecordHandler handler(on_record);
    return PollImpl(&handler, nullptr);
  }
  // As Poll(on_record), with `limit` records per GetRecords instead of options().limit.
  template <typename F>
  size_t Poll(F&& on_record, int limit) {
    const RecordHandler handler(on_record);
    return PollImpl(&handler, nullptr, limit);
  }
  // As Poll, with `on_user_record(const ShardInfo&, const UserRecord&)`: sub-sequence
  // numbers too (without a deaggregator, every record is one with sub-sequence number 0).
  template <typename F>
  size_t PollUserRecords(F&& on_user_record) {
    const UserRecordHandler handler(on_user_record);
    return PollImpl(nullptr, &handler);
  }

  // OK, or the error that kept the last Poll() from reading a shard.
  absl::Status last_error() const;
  // Shards read to their end (or that expired under the reader) that the stream still lists
  // (or whose children are still to be read): the others are forgotten.
  const std::set<std::string, std::less<>>& finished() const;
  // Records trimmed by retention before the reader got to them.
  uint64_t missed_records() const;
  // Shards known and waiting for their parents.
  std::size_t waiting() const;

 private:
  struct State;
  // Exactly one handler is set.
  size_t PollImpl(const RecordHandler* on_record, const UserRecordHandler* on_user_record,
                  int limit = 0);
  std::unique_ptr<State> state_;
};

}  // namespace riffle

#endif  // RIFFLE_LINEAGE_READER_H_
