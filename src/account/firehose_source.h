// The Kinesis source of a KinesisStreamAsSource delivery stream, with the limits on: the
// account's stream, read as Firehose reads it, with one GetRecords per shard per second of
// the clock, so that the delivery stream takes its share of the shard's 5 reads/s and
// leaves the rest to the stream's other readers. A read sooner than that is answered with
// ProvisionedThroughputExceededException, which the delivery stream's reader takes as
// "nothing now" (its iterator stays where it was).
//
// Thread safety: as the Stream's; the pacing table guards itself.
#ifndef RIFFLE_ACCOUNT_FIREHOSE_SOURCE_H_
#define RIFFLE_ACCOUNT_FIREHOSE_SOURCE_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "riffle/record_source.h"
#include "riffle/stream.h"

namespace riffle::detail {

class PacedSource final : public RecordSource {
 public:
  PacedSource(std::shared_ptr<Stream> stream, int64_t interval_ms)
      : stream_(std::move(stream)), interval_ms_(interval_ms) {}

  const std::string& name() const override { return stream_->name(); }
  Clock& clock() const override { return stream_->clock(); }
  absl::Duration iterator_lifetime() const override { return stream_->iterator_lifetime(); }
  absl::StatusOr<std::vector<Shard>> ListShards(const ListShardsRequest& request) const override {
    return stream_->ListShards(request);
  }
  absl::StatusOr<ShardIterator> GetShardIterator(const GetShardIteratorRequest& request) override {
    return stream_->GetShardIterator(request);
  }
  absl::Status GetRecords(const ShardIterator& iterator, GetRecordsResult& out, int limit) override;
  absl::StatusOr<ShardIterator> RenewShardIterator(const ShardIterator& iterator) override {
    return stream_->RenewShardIterator(iterator);
  }
  std::optional<uint64_t> ClosedShardRecordCount(std::string_view shard_id) const override {
    return stream_->ClosedShardRecordCount(shard_id);
  }

 private:
  const std::shared_ptr<Stream> stream_;
  const int64_t interval_ms_;
  std::mutex mu_;
  absl::flat_hash_map<uint64_t, int64_t> last_read_ms_;  // by shard index; guarded by mu_
};

}  // namespace riffle::detail

#endif  // RIFFLE_ACCOUNT_FIREHOSE_SOURCE_H_
