// OffsetCheckpointStore: checkpoints as committed offsets of one consumer group per
// application, written and read by a consumer client per group that never subscribes.
#include <cstdlib>
#include <cstring>
#include <map>

#include "common/names.h"
#include "common/validation.h"
#include "fmt/format.h"
#include "kafka/core.h"

namespace riffle::kafka {

// One client per consumer group, made on first use and kept.
class OffsetCheckpointStore::Groups {
 public:
  explicit Groups(const StreamOptions& options) : options_(options) {}
  ~Groups() {
    for (auto& [group, client] : clients_) rd_kafka_consumer_close(client.get());
  }

  absl::StatusOr<rd_kafka_t*> Client(const std::string& group_id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = clients_.find(group_id);
    if (it != clients_.end()) return it->second.get();
    absl::StatusOr<detail::Handle> client =
        detail::NewClient(RD_KAFKA_CONSUMER, options_,
                          {{"client.id", "riffle-checkpoints"},
                           {"group.id", group_id},
                           {"enable.auto.commit", "false"},
                           {"enable.auto.offset.store", "false"}});
    if (!client.ok()) return client.status();
    rd_kafka_t* rk = client->get();
    clients_.emplace(group_id, *std::move(client));
    return rk;
  }

 private:
  const StreamOptions& options_;
  std::mutex mu_;
  std::map<std::string, detail::Handle, std::less<>> clients_;
};

OffsetCheckpointStore::OffsetCheckpointStore(OffsetCheckpointStoreOptions options)
    : options_(std::move(options)), groups_(std::make_unique<Groups>(options_.stream->options())) {}

OffsetCheckpointStore::~OffsetCheckpointStore() = default;

absl::StatusOr<std::unique_ptr<OffsetCheckpointStore>> OffsetCheckpointStore::Create(
    OffsetCheckpointStoreOptions options) {
  if (options.stream == nullptr) {
    return InvalidArgumentError("OffsetCheckpointStoreOptions.stream is required.");
  }
  if (options.group_prefix.size() > 128) {
    return InvalidArgumentError("GroupPrefix must be at most 128 characters.");
  }
  return std::unique_ptr<OffsetCheckpointStore>(new OffsetCheckpointStore(std::move(options)));
}

std::string OffsetCheckpointStore::GroupId(std::string_view application) const {
  return options_.group_prefix + std::string(application);
}

namespace {

// The partition that holds a shard's checkpoints, after the arguments are validated.
absl::StatusOr<int32_t> Resolve(const detail::Core& core, std::string_view application,
                                std::string_view shard_id) {
  if (!riffle::detail::IsValidName(application)) {
    return InvalidArgumentError(fmt::format(
        "ApplicationName '{}' is invalid: it must be 1 to 128 characters of [a-zA-Z0-9_.-].",
        application.substr(0, 200)));
  }
  const std::optional<uint64_t> index = ParseShardId(shard_id);
  if (!index || *index >= static_cast<uint64_t>(core.partitions())) {
    return InvalidArgumentError(fmt::format("ShardId '{}' is not a shard of stream {}.",
                                            shard_id.substr(0, 200), core.topic()));
  }
  return static_cast<int32_t>(*index);
}

}  // namespace

absl::StatusOr<std::optional<std::string>> OffsetCheckpointStore::GetCheckpoint(
    std::string_view application, std::string_view shard_id) {
  const detail::Core& core = *options_.stream->core_;
  absl::StatusOr<int32_t> partition = Resolve(core, application, shard_id);
  if (!partition.ok()) return partition.status();
  const std::string group = GroupId(application);
  absl::StatusOr<rd_kafka_t*> client = groups_->Client(group);
  if (!client.ok()) return client.status();
  detail::PartitionList list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), core.topic().c_str(), *partition);
  const std::string context =
      fmt::format("Reading the checkpoint of shard {} for application {} (consumer group {})",
                  shard_id, application, group);
  rd_kafka_resp_err_t err = rd_kafka_committed(
      *client, list.get(), std::max(1, detail::TimeoutMs(core.options().request_timeout)));
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = list->elems[0].err;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return detail::KafkaError(err, context);
  const rd_kafka_topic_partition_t& committed = list->elems[0];
  if (committed.offset < 0) return std::optional<std::string>();
  const auto shard = static_cast<uint64_t>(*partition);
  if (committed.metadata_size > 0) {
    std::string text(static_cast<const char*>(committed.metadata), committed.metadata_size);
    absl::StatusOr<SequenceNumber> n = SequenceNumber::Parse(text);
    // A number of this shard whose offset another client moved: the offset wins.
    const bool moved = n.ok() && n->stream_tag == core.tag() && n->shard_index == shard &&
                       static_cast<int64_t>(n->position) + 1 != committed.offset;
    if (!moved) return std::optional<std::string>(std::move(text));
  }
  // Nothing processed, which is not "never checkpointed": a reset to the earliest offset.
  if (committed.offset == 0) return std::optional<std::string>(kTrimHorizonCheckpoint);
  const auto before = static_cast<uint64_t>(committed.offset - 1);
  return std::optional<std::string>(SequenceNumber{core.tag(), shard, before, before}.ToString());
}

absl::Status OffsetCheckpointStore::PutCheckpoint(std::string_view application,
                                                  std::string_view shard_id,
                                                  std::string_view checkpoint) {
  const detail::Core& core = *options_.stream->core_;
  absl::StatusOr<int32_t> partition = Resolve(core, application, shard_id);
  if (!partition.ok()) return partition.status();
  if (absl::Status s = riffle::detail::CheckCheckpointValue(checkpoint); !s.ok()) return s;
  const std::string group = GroupId(application);
  absl::StatusOr<rd_kafka_t*> client = groups_->Client(group);
  if (!client.ok()) return client.status();
  const std::string context =
      fmt::format("Checkpointing shard {} for application {} (consumer group {})", shard_id,
                  application, group);
  const int timeout_ms = std::max(1, detail::TimeoutMs(core.options().request_timeout));
  int64_t offset = -1;
  absl::StatusOr<SequenceNumber> n = SequenceNumber::Parse(checkpoint);
  if (n.ok() && n->stream_tag == core.tag() &&
      n->shard_index == static_cast<uint64_t>(*partition) && n->position < uint64_t{INT64_MAX}) {
    offset = static_cast<int64_t>(n->position) + 1;  // Kafka commits the next offset to read
  } else {
    // Another kind of checkpoint: kept in the metadata, the offset left where it is.
    detail::PartitionList current(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(current.get(), core.topic().c_str(), *partition);
    rd_kafka_resp_err_t err = rd_kafka_committed(*client, current.get(), timeout_ms);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = current->elems[0].err;
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return detail::KafkaError(err, context);
    offset = std::max<int64_t>(0, current->elems[0].offset);
  }
  detail::PartitionList list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_t* p =
      rd_kafka_topic_partition_list_add(list.get(), core.topic().c_str(), *partition);
  p->offset = offset;
  p->metadata = std::malloc(checkpoint.size());  // freed with the list
  std::memcpy(p->metadata, checkpoint.data(), checkpoint.size());
  p->metadata_size = checkpoint.size();
  // The commit's answer through a queue of its own, waited for at most request_timeout: a
  // synchronous rd_kafka_commit waits for as long as the coordinator cannot be reached.
  detail::Queue queue(rd_kafka_queue_new(*client));
  rd_kafka_resp_err_t err =
      rd_kafka_commit_queue(*client, list.get(), queue.get(), nullptr, nullptr);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return detail::KafkaError(err, context);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue.get(), timeout_ms);
  if (event == nullptr) return detail::KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, context);
  err = rd_kafka_event_error(event);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const rd_kafka_topic_partition_list_t* done = rd_kafka_event_topic_partition_list(event);
    if (done != nullptr && done->cnt > 0) err = done->elems[0].err;
  }
  rd_kafka_event_destroy(event);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return detail::KafkaError(err, context);
  return absl::OkStatus();
}

}  // namespace riffle::kafka
