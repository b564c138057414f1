#include "kafka/client.h"

#include <algorithm>
#include <charconv>
#include <cstdint>

#include "absl/strings/cord.h"
#include "fmt/format.h"

namespace riffle::kafka {
namespace {

constexpr char kKafkaCodePayload[] = "type.riffle.dev/kafka-error-code";

absl::StatusCode KafkaCode(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_PREFERRED_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
      return absl::StatusCode::kUnavailable;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_DELEGATION_TOKEN_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
      return absl::StatusCode::kPermissionDenied;
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__DESTROY:
    case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
    case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::Status WithCode(absl::Status s, rd_kafka_resp_err_t err) {
  s.SetPayload(kKafkaCodePayload, absl::Cord(std::to_string(static_cast<int>(err))));
  return s;
}

std::string KafkaText(rd_kafka_resp_err_t err, std::string_view context) {
  return fmt::format("{}: {} ({})", context, rd_kafka_err2str(err), rd_kafka_err2name(err));
}

}  // namespace

std::optional<int> KafkaErrorCode(const absl::Status& status) {
  auto payload = status.GetPayload(kKafkaCodePayload);  // absl::optional in Debian's build
  if (!payload) return std::nullopt;
  const std::string text(*payload);
  int code = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), code);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return code;
}

namespace detail {

absl::Status KafkaError(rd_kafka_resp_err_t err, std::string_view context) {
  const std::string text = KafkaText(err, context);
  switch (err) {
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
      return WithCode(ProvisionedThroughputExceededError(text), err);
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
      return WithCode(InvalidArgumentError(text), err);
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      return WithCode(ResourceNotFoundError(text), err);
    default:
      return WithCode(MakeError(KafkaCode(err), kKafkaException, text), err);
  }
}

absl::Status KafkaError(rd_kafka_error_t* error, std::string_view context) {
  const rd_kafka_resp_err_t err = rd_kafka_error_code(error);
  absl::Status s = KafkaError(err, fmt::format("{}: {}", context, rd_kafka_error_string(error)));
  rd_kafka_error_destroy(error);
  return s;
}

absl::Status FatalKafkaError(rd_kafka_resp_err_t err, std::string_view context) {
  return WithCode(
      MakeError(absl::StatusCode::kFailedPrecondition, kKafkaException, KafkaText(err, context)),
      err);
}

int TimeoutMs(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return -1;
  const int64_t ms = absl::ToInt64Milliseconds(d);
  return static_cast<int>(std::clamp<int64_t>(ms, 0, INT32_MAX));
}

namespace {

// What a consumer's main queue receives (errors met in the background, such as a broker
// out of reach): nothing of riffle's polls that queue, and the calls that meet an error
// report it, so the background thread drops these instead of keeping them for good.
void DropEvent(rd_kafka_t* /*rk*/, rd_kafka_event_t* event, void* /*opaque*/) {
  rd_kafka_event_destroy(event);
}

}  // namespace

absl::StatusOr<Handle> NewClient(rd_kafka_type_t type, const StreamOptions& options,
                                 const Properties& properties,
                                 const std::function<void(rd_kafka_conf_t*)>& setup) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char error[512];
  auto set = [&](const std::string& key, const std::string& value) -> absl::Status {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof(error)) !=
        RD_KAFKA_CONF_OK) {
      return InvalidArgumentError(
          fmt::format("Kafka property {}={} was refused: {}", key, value, error));
    }
    return absl::OkStatus();
  };
  absl::Status s = set("bootstrap.servers", options.bootstrap_servers);
  for (const auto& [key, value] : properties) {
    if (s.ok()) s = set(key, value);
  }
  for (const auto& [key, value] : options.config) {
    if (s.ok()) s = set(key, value);
  }
  if (!s.ok()) {
    rd_kafka_conf_destroy(conf);
    return s;
  }
  const bool consumer = type == RD_KAFKA_CONSUMER;
  if (consumer) rd_kafka_conf_set_background_event_cb(conf, &DropEvent);
  if (setup) setup(conf);
  rd_kafka_t* rk = rd_kafka_new(type, conf, error, sizeof(error));  // takes conf on success
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return InvalidArgumentError(fmt::format("The Kafka client could not be created: {}", error));
  }
  if (consumer) {
    const Queue main(rd_kafka_queue_get_main(rk));
    const Queue background(rd_kafka_queue_get_background(rk));
    rd_kafka_queue_forward(main.get(), background.get());
  }
  return Handle(rk);
}

}  // namespace detail
}  // namespace riffle::kafka
