// PacedSource: Firehose's reads of a Kinesis source, one GetRecords per shard per second.
#include "account/firehose_source.h"

#include "fmt/format.h"
#include "riffle/status.h"

namespace riffle::detail {

absl::Status PacedSource::GetRecords(const ShardIterator& iterator, GetRecordsResult& out,
                                     int limit) {
  const int64_t now_ms = stream_->clock().NowMillis();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, added] = last_read_ms_.try_emplace(iterator.shard_index, now_ms);
    if (!added) {
      if (now_ms - it->second < interval_ms_) {
        return ProvisionedThroughputExceededError(
            fmt::format("The delivery stream reads shard {} of stream {} once per second.",
                        iterator.shard_index, stream_->name()));
      }
      it->second = now_ms;
    }
  }
  return stream_->GetRecords(iterator, out, limit);
}

}  // namespace riffle::detail
