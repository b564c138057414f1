// PacedSource: Firehose's reads of a Kinesis source, one GetRecords per shard per second.
#include "account/firehose_source.h"

#include <optional>

#include "fmt/format.h"
#include "riffle/status.h"

namespace riffle::detail {

absl::Status PacedSource::GetRecords(const ShardIterator& iterator, GetRecordsResult& out,
                                     int limit) {
  const int64_t now_ms = stream_->clock().NowMillis();
  std::optional<int64_t> previous;  // the slot's last read, to give back
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, added] = last_read_ms_.try_emplace(iterator.shard_index, now_ms);
    if (!added) {
      if (now_ms - it->second < interval_ms_) {
        return ProvisionedThroughputExceededError(
            fmt::format("The delivery stream reads shard {} of stream {} once per second.",
                        iterator.shard_index, stream_->name()));
      }
      previous = it->second;
      it->second = now_ms;
    }
  }
  absl::Status s = stream_->GetRecords(iterator, out, limit);
  if (IsProvisionedThroughputExceededException(s)) {
    // The shard's own read limit refused the call (other readers took its 5 reads this
    // second): that was no read, so the next poll tries again rather than a second later.
    std::lock_guard<std::mutex> lock(mu_);
    auto it = last_read_ms_.find(iterator.shard_index);
    if (it != last_read_ms_.end() && it->second == now_ms) {
      if (previous) {
        it->second = *previous;
      } else {
        last_read_ms_.erase(it);
      }
    }
  }
  return s;
}

}  // namespace riffle::detail
