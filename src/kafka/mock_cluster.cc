#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <string>
#include <vector>

#include "fmt/format.h"
#include "kafka/client.h"

namespace riffle::kafka {

struct MockCluster::Impl {
  detail::Handle rk;  // the client the cluster is attached to (it runs on its threads)
  rd_kafka_mock_cluster_t* cluster = nullptr;
  ~Impl() {
    if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
  }
};

MockCluster::MockCluster(std::unique_ptr<Impl> impl, std::string bootstrap_servers,
                         int broker_count)
    : impl_(std::move(impl)),
      bootstrap_servers_(std::move(bootstrap_servers)),
      broker_count_(broker_count) {}

MockCluster::~MockCluster() = default;

absl::StatusOr<std::unique_ptr<MockCluster>> MockCluster::Create(int broker_count) {
  if (broker_count < 1 || broker_count > 16) {
    return InvalidArgumentError(
        fmt::format("BrokerCount is {}; it must be between 1 and 16.", broker_count));
  }
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char error[512];
  // The host client never connects anywhere: keep it from warning about that.
  rd_kafka_conf_set(conf, "log_level", "3", error, sizeof(error));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return InternalFailureError(fmt::format("The mock cluster's client failed: {}", error));
  }
  auto impl = std::make_unique<Impl>();
  impl->rk.reset(rk);
  impl->cluster = rd_kafka_mock_cluster_new(rk, broker_count);
  if (impl->cluster == nullptr) {
    return InternalFailureError("librdkafka could not start a mock cluster.");
  }
  std::string bootstraps = rd_kafka_mock_cluster_bootstraps(impl->cluster);
  return std::unique_ptr<MockCluster>(
      new MockCluster(std::move(impl), std::move(bootstraps), broker_count));
}

absl::Status MockCluster::CreateTopic(std::string_view topic, int partitions,
                                      int replication_factor) {
  if (partitions < 1 || replication_factor < 1 || replication_factor > broker_count_) {
    return InvalidArgumentError(fmt::format(
        "CreateTopic {}: {} partitions and {} replicas; it needs at least 1 of each and at "
        "most {} replicas (the brokers).",
        topic, partitions, replication_factor, broker_count_));
  }
  const std::string name(topic);
  const rd_kafka_resp_err_t err =
      rd_kafka_mock_topic_create(impl_->cluster, name.c_str(), partitions, replication_factor);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return detail::KafkaError(err, fmt::format("CreateTopic {}", topic));
  }
  return absl::OkStatus();
}

absl::Status MockCluster::SetBrokerDown(int broker_id) {
  if (rd_kafka_mock_broker_set_down(impl_->cluster, broker_id) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return detail::KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG,
                              fmt::format("SetBrokerDown: no broker {}", broker_id));
  }
  return absl::OkStatus();
}

absl::Status MockCluster::PushRequestErrors(int api_key, std::span<const int> error_codes) {
  if (api_key < 0 || api_key > INT16_MAX) {
    return detail::KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG,
                              fmt::format("PushRequestErrors: no Kafka API {}", api_key));
  }
  std::vector<rd_kafka_resp_err_t> errors;
  errors.reserve(error_codes.size());
  for (int code : error_codes) errors.push_back(static_cast<rd_kafka_resp_err_t>(code));
  rd_kafka_mock_push_request_errors_array(impl_->cluster, static_cast<int16_t>(api_key),
                                          errors.size(), errors.data());
  return absl::OkStatus();
}

absl::Status MockCluster::SetBrokerUp(int broker_id) {
  if (rd_kafka_mock_broker_set_up(impl_->cluster, broker_id) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return detail::KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG,
                              fmt::format("SetBrokerUp: no broker {}", broker_id));
  }
  return absl::OkStatus();
}

absl::Status MockCluster::SetPartitionLeader(std::string_view topic, int partition, int broker_id) {
  const std::string name(topic);
  const rd_kafka_resp_err_t err =
      rd_kafka_mock_partition_set_leader(impl_->cluster, name.c_str(), partition, broker_id);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return detail::KafkaError(
        err, fmt::format("SetPartitionLeader({}, {}, {})", topic, partition, broker_id));
  }
  return absl::OkStatus();
}

}  // namespace riffle::kafka
