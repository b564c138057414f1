// De-aggregation: one record, a batch (MD5s checked together), subscriptions.
#include <memory>
#include <utility>

#include "kpl/codec.h"
#include "riffle/detail/md5.h"
#include "riffle/kpl.h"

namespace riffle::kpl {
namespace {

using detail::DecodeScratch;

void AppendRaw(const Record& record, std::vector<UserRecord>& out) {
  UserRecord& u = out.emplace_back();
  static_cast<Record&>(u) = record;
}

// After the MD5 matched: the user records, or the record itself when the protobuf does not
// parse. `dropped`: user records of a misplaced aggregate left out.
RecordKind DecodeVerified(const Record& record, const HashKeyRange& range, bool deliver_misplaced,
                          std::vector<UserRecord>& out, DecodeScratch& s, uint64_t& dropped) {
  const size_t first = out.size();
  if (!detail::ParseAggregatedRecord(detail::AggregateBody(record.data), out, s)) {
    AppendRaw(record, out);
    return RecordKind::kNotAggregated;
  }
  for (size_t i = first; i < out.size(); ++i) {
    out[i].sequence_number = record.sequence_number;
    out[i].approximate_arrival_timestamp = record.approximate_arrival_timestamp;
  }
  if (!detail::AllInRange(std::span<const UserRecord>(out).subspan(first), range, s)) {
    if (!deliver_misplaced) {
      dropped += out.size() - first;
      out.resize(first);
    }
    return RecordKind::kMisplacedAggregate;
  }
  return RecordKind::kAggregate;
}

bool ScalarDigestMatches(std::string_view data) {
  const std::string_view body = detail::AggregateBody(data);
  const riffle::detail::Md5State s = riffle::detail::Md5Words(body.data(), body.size());
  const uint32_t words[4] = {s.a, s.b, s.c, s.d};
  return detail::DigestMatches(data, words);
}

}  // namespace

bool DecodeAggregate(std::string_view data, std::vector<UserRecord>& out) {
  if (!detail::HasAggregateFraming(data) || !ScalarDigestMatches(data)) return false;
  return detail::ParseAggregatedRecord(detail::AggregateBody(data), out, detail::ThreadScratch());
}

RecordKind Deaggregate(const Record& record, std::vector<UserRecord>& out,
                       const HashKeyRange& shard_range, const DeaggregationOptions& options) {
  if (detail::HasAggregateFraming(record.data) && ScalarDigestMatches(record.data)) {
    uint64_t dropped = 0;
    return DecodeVerified(record, shard_range, options.deliver_misplaced, out,
                          detail::ThreadScratch(), dropped);
  }
  AppendRaw(record, out);
  return RecordKind::kNotAggregated;
}

void Deaggregator::Decode(std::span<const Record> records, const HashKeyRange& shard_range,
                          std::vector<UserRecord>& out) const {
  DecodeScratch& s = detail::ThreadScratch();
  // The MD5s of every aggregate of the batch first, side by side in vector lanes.
  s.body_jobs.clear();
  for (const Record& r : records) {
    if (!detail::HasAggregateFraming(r.data)) continue;
    const std::string_view body = detail::AggregateBody(r.data);
    detail::Md5Job& job = s.body_jobs.emplace_back();
    job.data = reinterpret_cast<const unsigned char*>(body.data());
    job.size = body.size();
  }
  detail::Md5Jobs(s.body_jobs.data(), s.body_jobs.size());
  uint64_t aggregates = 0, misplaced = 0, dropped = 0;
  const size_t first = out.size();
  size_t job = 0;
  for (const Record& r : records) {
    if (!detail::HasAggregateFraming(r.data) ||
        !detail::DigestMatches(r.data, s.body_jobs[job++].state)) {
      AppendRaw(r, out);
      continue;
    }
    const RecordKind kind =
        DecodeVerified(r, shard_range, options_.deliver_misplaced, out, s, dropped);
    aggregates += kind != RecordKind::kNotAggregated;
    misplaced += kind == RecordKind::kMisplacedAggregate;
  }
  records_.fetch_add(records.size(), std::memory_order_relaxed);
  aggregates_.fetch_add(aggregates, std::memory_order_relaxed);
  user_records_.fetch_add(out.size() - first, std::memory_order_relaxed);
  misplaced_aggregates_.fetch_add(misplaced, std::memory_order_relaxed);
  dropped_user_records_.fetch_add(dropped, std::memory_order_relaxed);
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
