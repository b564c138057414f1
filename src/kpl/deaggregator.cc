// De-aggregation: one record, a batch (codec.cc's DecodeRecords), subscriptions.
#include <memory>
#include <utility>

#include "kpl/codec.h"
#include "riffle/detail/md5.h"
#include "riffle/kpl.h"

namespace riffle::kpl {

bool DecodeAggregate(std::string_view data, std::vector<UserRecord>& out) {
  if (!detail::HasAggregateFraming(data)) return false;
  const std::string_view body = detail::AggregateBody(data);
  const riffle::detail::Md5State s = riffle::detail::Md5Words(body.data(), body.size());
  const uint32_t words[4] = {s.a, s.b, s.c, s.d};
  return detail::DigestMatches(data, words) &&
         detail::ParseAggregatedRecord(body, Record{}, nullptr, out, detail::ThreadScratch());
}

RecordKind Deaggregate(const Record& record, std::vector<UserRecord>& out,
                       const HashKeyRange& shard_range, const DeaggregationOptions& options) {
  detail::DecodeCounts counts;
  RecordKind kind;
  detail::DecodeRecords(std::span<const Record>(&record, 1), shard_range, options.deliver_misplaced,
                        out, counts, &kind);
  return kind;
}

void Deaggregator::Decode(std::span<const Record> records, const HashKeyRange& shard_range,
                          std::vector<UserRecord>& out) const {
  const size_t first = out.size();
  detail::DecodeCounts counts;
  detail::DecodeRecords(records, shard_range, options_.deliver_misplaced, out, counts, nullptr);
  records_.fetch_add(records.size(), std::memory_order_relaxed);
  aggregates_.fetch_add(counts.aggregates, std::memory_order_relaxed);
  user_records_.fetch_add(out.size() - first, std::memory_order_relaxed);
  misplaced_aggregates_.fetch_add(counts.misplaced, std::memory_order_relaxed);
  dropped_user_records_.fetch_add(counts.dropped, std::memory_order_relaxed);
}

DeaggregatorStats Deaggregator::stats() const {
  return {records_.load(std::memory_order_relaxed), aggregates_.load(std::memory_order_relaxed),
          user_records_.load(std::memory_order_relaxed),
          misplaced_aggregates_.load(std::memory_order_relaxed),
          dropped_user_records_.load(std::memory_order_relaxed)};
}

SubscribeToShardHandler DeaggregatingHandler(const UserRecordDecoder& decoder,
                                             HashKeyRange shard_range, UserRecordsHandler handler) {
  // Buffers reused from event to event (a subscription calls its handler from one thread).
  struct Buffers {
    std::vector<UserRecord> user_records;
    std::vector<Record> records;
  };
  auto buffers = std::make_shared<Buffers>();
  return [&decoder, shard_range, handler = std::move(handler),
          buffers](const SubscribeToShardEvent& event) {
    buffers->user_records.clear();
    decoder.Decode(event.records, shard_range, buffers->user_records);
    buffers->records.assign(buffers->user_records.begin(), buffers->user_records.end());
    SubscribeToShardEvent unpacked = event;
    unpacked.records = buffers->records;
    handler(unpacked, buffers->user_records);
  };
}

}  // namespace riffle::kpl
