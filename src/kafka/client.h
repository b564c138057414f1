// What every part of riffle::kafka shares about librdkafka: owning handles, client
// construction from StreamOptions, and the mapping of Kafka errors to riffle's.
#ifndef RIFFLE_KAFKA_CLIENT_H_
#define RIFFLE_KAFKA_CLIENT_H_

#include <librdkafka/rdkafka.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "riffle/kafka.h"

namespace riffle::kafka::detail {

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using Handle = std::unique_ptr<rd_kafka_t, HandleDeleter>;

struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
using Queue = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;

struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

// The error for Kafka's `err` while doing `context` (for example "PutRecord on shard
// shardId-000000000001"): the service's name where the meaning is the same, otherwise
// kKafkaException with Kafka's text. Every such status carries the code (KafkaErrorCode).
absl::Status KafkaError(rd_kafka_resp_err_t err, std::string_view context);
// The same for an error object, which it destroys.
absl::Status KafkaError(rd_kafka_error_t* error, std::string_view context);
// A fatal producer error whose cause is `err` (rd_kafka_fatal_error): kKafkaException with
// code kFailedPrecondition whatever `err` is, since only a new producer recovers; `err`'s
// name in the text and as KafkaErrorCode.
absl::Status FatalKafkaError(rd_kafka_resp_err_t err, std::string_view context);

// Milliseconds for librdkafka's int timeouts (an infinite duration is -1).
int TimeoutMs(absl::Duration d);

using Properties = std::vector<std::pair<std::string, std::string>>;

// A client of the stream's cluster: bootstrap.servers, then `properties`, then the user's
// options.config; `setup` may add callbacks before the client is created. A consumer's main
// queue goes to librdkafka's background thread, which drops its events (nothing polls it).
absl::StatusOr<Handle> NewClient(rd_kafka_type_t type, const StreamOptions& options,
                                 const Properties& properties,
                                 const std::function<void(rd_kafka_conf_t*)>& setup = nullptr);

}  // namespace riffle::kafka::detail

#endif  // RIFFLE_KAFKA_CLIENT_H_
