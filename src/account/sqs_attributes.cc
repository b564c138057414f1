// SQS queue attributes: names, ranges and combinations as the service checks them, the
// two redrive policies (JSON), tags, and the service's error wording.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <string>

#include "account/sqs_internal.h"
#include "fmt/format.h"
#include "riffle/status.h"

namespace riffle::detail {

absl::Status QueueDoesNotExist() {
  return MakeError(absl::StatusCode::kNotFound, kQueueDoesNotExist,
                   "The specified queue does not exist.");
}

absl::Status SqsMissingParameter(std::string_view parameter) {
  return MakeError(absl::StatusCode::kInvalidArgument, kMissingParameter,
                   fmt::format("The request must contain the parameter {}.", parameter));
}

absl::Status InvalidAttributeName(std::string_view name) {
  return MakeError(absl::StatusCode::kInvalidArgument, kInvalidAttributeName,
                   fmt::format("Unknown Attribute {}.", name.substr(0, 256)));
}

absl::Status InvalidAttributeValueFor(std::string_view name, std::string_view reason) {
  std::string message = fmt::format("Invalid value for the parameter {}.", name);
  if (!reason.empty()) fmt::format_to(std::back_inserter(message), " Reason: {}", reason);
  return MakeError(absl::StatusCode::kInvalidArgument, kInvalidAttributeValue, message);
}

// ---- A small JSON reader for the flat objects of the two policies ----
namespace {

struct JsonValue {
  enum Kind { kString, kNumber, kList } kind = kString;
  std::string text;                // a string's value or a number's text
  std::vector<std::string> items;  // a list of strings
};
using JsonObject = std::map<std::string, JsonValue, std::less<>>;

class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : s_(text) {}

  // An object whose values are strings, numbers or lists of strings; nullopt otherwise.
  std::optional<JsonObject> Object() {
    JsonObject out;
    if (!Eat('{')) return std::nullopt;
    if (!Eat('}')) {
      do {
        std::string key;
        if (!String(&key) || !Eat(':')) return std::nullopt;
        JsonValue v;
        Skip();
        if (Peek() == '"') {
          if (!String(&v.text)) return std::nullopt;
        } else if (Peek() == '[') {
          v.kind = JsonValue::kList;
          Eat('[');
          if (!Eat(']')) {
            do {
              std::string item;
              if (!String(&item)) return std::nullopt;
              v.items.push_back(std::move(item));
            } while (Eat(','));
            if (!Eat(']')) return std::nullopt;
          }
        } else {
          v.kind = JsonValue::kNumber;
          const size_t start = pos_;
          while (pos_ < s_.size() &&
                 (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '-' ||
                  s_[pos_] == '+' || s_[pos_] == '.' || s_[pos_] == 'e' || s_[pos_] == 'E')) {
            ++pos_;
          }
          if (pos_ == start) return std::nullopt;
          v.text = std::string(s_.substr(start, pos_ - start));
        }
        if (!out.emplace(std::move(key), std::move(v)).second) return std::nullopt;
      } while (Eat(','));
      if (!Eat('}')) return std::nullopt;
    }
    Skip();
    if (pos_ != s_.size()) return std::nullopt;
    return out;
  }

 private:
  void Skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool Eat(char c) {
    Skip();
    if (Peek() != c) return false;
    ++pos_;
    return true;
  }
  // A string without escapes other than \" \\ \/ (enough for ARNs and the policy words).
  bool String(std::string* out) {
    if (!Eat('"')) return false;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c == '\\') {
        if (pos_ >= s_.size()) return false;
        c = s_[pos_++];
        if (c != '"' && c != '\\' && c != '/') return false;
      }
      out->push_back(c);
    }
    if (pos_ >= s_.size()) return false;
    ++pos_;
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
};

std::optional<int64_t> ParseInt(std::string_view text) {
  int64_t v = 0;
  if (text.empty() || text.size() > 18) return std::nullopt;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsSqsArn(std::string_view arn) {
  return arn.size() <= 1024 &&
         (arn.starts_with("arn:aws:sqs:") || arn.starts_with("arn:aws-cn:sqs:") ||
          arn.starts_with("arn:aws-us-gov:sqs:"));
}

}  // namespace

absl::StatusOr<ParsedRedrivePolicy> ParseRedrivePolicy(std::string_view json) {
  auto bad = [&](std::string_view reason) {
    return InvalidParameterValueFor("RedrivePolicy", json, reason);
  };
  std::optional<JsonObject> o = JsonReader(json).Object();
  if (!o) return bad("Redrive policy is not a valid JSON map.");
  ParsedRedrivePolicy p;
  for (const auto& [key, value] : *o) {
    if (key == "deadLetterTargetArn" && value.kind == JsonValue::kString) {
      p.dead_letter_target_arn = value.text;
    } else if (key == "maxReceiveCount" && value.kind != JsonValue::kList) {
      std::optional<int64_t> n = ParseInt(value.text);
      if (!n || *n < 1 || *n > 1000) {
        return bad(fmt::format(
            "Invalid value for maxReceiveCount: {}, valid values are from 1 to 1000 both "
            "inclusive.",
            value.text));
      }
      p.max_receive_count = static_cast<int>(*n);
    } else {
      return bad(fmt::format("Unknown or malformed redrive policy member {}.", key));
    }
  }
  if (p.dead_letter_target_arn.empty()) return bad("Redrive policy needs deadLetterTargetArn.");
  if (!IsSqsArn(p.dead_letter_target_arn)) return bad("Invalid value for deadLetterTargetArn.");
  if (p.max_receive_count == 0) return bad("Redrive policy needs maxReceiveCount.");
  return p;
}

absl::StatusOr<ParsedRedriveAllowPolicy> ParseRedriveAllowPolicy(std::string_view json) {
  auto bad = [&](std::string_view reason) {
    return InvalidParameterValueFor("RedriveAllowPolicy", json, reason);
  };
  std::optional<JsonObject> o = JsonReader(json).Object();
  if (!o) return bad("Redrive allow policy is not a valid JSON map.");
  ParsedRedriveAllowPolicy p;
  bool has_arns = false;
  for (const auto& [key, value] : *o) {
    if (key == "redrivePermission" && value.kind == JsonValue::kString) {
      p.redrive_permission = value.text;
    } else if (key == "sourceQueueArns" && value.kind == JsonValue::kList) {
      has_arns = true;
      p.source_queue_arns = value.items;
    } else {
      return bad(fmt::format("Unknown or malformed redrive allow policy member {}.", key));
    }
  }
  const std::string& perm = p.redrive_permission;
  if (perm != "allowAll" && perm != "denyAll" && perm != "byQueue") {
    return bad("redrivePermission must be allowAll, denyAll or byQueue.");
  }
  if (perm == "byQueue") {
    if (p.source_queue_arns.empty() || p.source_queue_arns.size() > 10) {
      return bad("byQueue needs 1 to 10 sourceQueueArns.");
    }
    for (const std::string& arn : p.source_queue_arns) {
      if (!IsSqsArn(arn)) return bad(fmt::format("{} is not a queue ARN.", arn));
    }
  } else if (has_arns) {
    return bad("sourceQueueArns is allowed only with redrivePermission byQueue.");
  }
  return p;
}

std::string RedrivePolicyJson(const ParsedRedrivePolicy& p) {
  return fmt::format(R"({{"deadLetterTargetArn":"{}","maxReceiveCount":{}}})",
                     p.dead_letter_target_arn, p.max_receive_count);
}

std::string RedriveAllowPolicyJson(const ParsedRedriveAllowPolicy& p) {
  std::string out = fmt::format(R"({{"redrivePermission":"{}")", p.redrive_permission);
  if (!p.source_queue_arns.empty()) {
    out += R"(,"sourceQueueArns":[)";
    for (size_t i = 0; i < p.source_queue_arns.size(); ++i) {
      fmt::format_to(std::back_inserter(out), R"({}"{}")", i ? "," : "", p.source_queue_arns[i]);
    }
    out += "]";
  }
  out += "}";
  return out;
}

SqsAttributeMap DefaultFifoAttributes() {
  return {
      {"ContentBasedDeduplication", "false"},
      {"DeduplicationScope", "queue"},
      {"DelaySeconds", "0"},
      {"FifoQueue", "true"},
      {"FifoThroughputLimit", "perQueue"},
      {"MaximumMessageSize", "262144"},
      {"MessageRetentionPeriod", "345600"},
      {"ReceiveMessageWaitTimeSeconds", "0"},
      {"SqsManagedSseEnabled", "true"},
      {"VisibilityTimeout", "30"},
  };
}

absl::Status MergeAttributes(const SqsAttributeMap& requested, bool creating,
                             SqsAttributeMap* into) {
  struct Range {
    std::string_view name;
    int64_t lo, hi;
  };
  static constexpr Range kRanges[] = {
      {"DelaySeconds", 0, 900},
      {"MaximumMessageSize", 1024, 1'048'576},
      {"MessageRetentionPeriod", 60, 1'209'600},
      {"ReceiveMessageWaitTimeSeconds", 0, 20},
      {"VisibilityTimeout", 0, 43'200},
      {"KmsDataKeyReusePeriodSeconds", 60, 86'400},
  };
  SqsAttributeMap out = *into;
  for (const auto& [name, value] : requested) {
    const Range* range = nullptr;
    for (const Range& r : kRanges) {
      if (r.name == name) range = &r;
    }
    if (range != nullptr) {
      std::optional<int64_t> v = ParseInt(value);
      if (!v || *v < range->lo || *v > range->hi) return InvalidAttributeValueFor(name);
      out[name] = std::to_string(*v);
    } else if (name == "FifoQueue" && !creating) {
      // A queue's type never changes: "true" on a FIFO queue changes nothing.
      if (Lower(value) != "true") {
        return InvalidAttributeValueFor(name, "Modifying queue type is not supported.");
      }
    } else if (name == "ContentBasedDeduplication" || name == "SqsManagedSseEnabled" ||
               (name == "FifoQueue" && creating)) {
      const std::string v = Lower(value);
      if (v != "true" && v != "false") return InvalidAttributeValueFor(name);
      out[name] = v;
    } else if (name == "DeduplicationScope") {
      if (value != "messageGroup" && value != "queue") return InvalidAttributeValueFor(name);
      out[name] = value;
    } else if (name == "FifoThroughputLimit") {
      if (value != "perQueue" && value != "perMessageGroupId") {
        return InvalidAttributeValueFor(name);
      }
      out[name] = value;
    } else if (name == "RedrivePolicy") {
      if (value.empty()) {
        out.erase(name);
        continue;
      }
      absl::StatusOr<ParsedRedrivePolicy> p = ParseRedrivePolicy(value);
      if (!p.ok()) return p.status();
      out[name] = RedrivePolicyJson(*p);
    } else if (name == "RedriveAllowPolicy") {
      if (value.empty()) {
        out.erase(name);
        continue;
      }
      absl::StatusOr<ParsedRedriveAllowPolicy> p = ParseRedriveAllowPolicy(value);
      if (!p.ok()) return p.status();
      out[name] = RedriveAllowPolicyJson(*p);
    } else if (name == "Policy" || name == "KmsMasterKeyId") {
      if (value.size() > 20'480) return InvalidAttributeValueFor(name);
      if (value.empty()) {
        out.erase(name);
      } else {
        out[name] = value;
      }
    } else {
      return InvalidAttributeName(name);
    }
  }
  // One kind of server-side encryption at a time: a KMS key turns SSE-SQS off (asking for
  // both is refused), and its data keys are reused for 300 s unless the request says.
  if (out.contains("KmsMasterKeyId")) {
    auto sse = requested.find("SqsManagedSseEnabled");
    if (sse != requested.end() && Lower(sse->second) == "true") {
      return MakeError(absl::StatusCode::kInvalidArgument, kInvalidAttributeName,
                       "You can use one type of server-side encryption (SSE) at one time. You "
                       "can either enable KMS SSE or SQS SSE.");
    }
    out["SqsManagedSseEnabled"] = "false";
    out.try_emplace("KmsDataKeyReusePeriodSeconds", "300");
  }
  // High throughput is the pair DeduplicationScope=messageGroup and
  // FifoThroughputLimit=perMessageGroupId; the limit per group needs deduplication per group.
  if (out["FifoThroughputLimit"] == "perMessageGroupId" &&
      out["DeduplicationScope"] != "messageGroup") {
    return InvalidAttributeValueFor(
        "FifoThroughputLimit",
        "perMessageGroupId is allowed only when DeduplicationScope is messageGroup.");
  }
  *into = std::move(out);
  return absl::OkStatus();
}

FifoQueueOptions OptionsFromAttributes(const SqsAttributeMap& a) {
  auto num = [&](std::string_view name) {
    auto it = a.find(std::string(name));
    return it == a.end() ? 0 : static_cast<int>(ParseInt(it->second).value_or(0));
  };
  auto text = [&](std::string_view name) -> std::string {
    auto it = a.find(std::string(name));
    return it == a.end() ? std::string() : it->second;
  };
  FifoQueueOptions o;
  o.visibility_timeout_seconds = num("VisibilityTimeout");
  o.message_retention_period_seconds = num("MessageRetentionPeriod");
  o.maximum_message_size = num("MaximumMessageSize");
  o.delay_seconds = num("DelaySeconds");
  o.receive_message_wait_time_seconds = num("ReceiveMessageWaitTimeSeconds");
  o.content_based_deduplication = text("ContentBasedDeduplication") == "true";
  o.deduplication_scope = text("DeduplicationScope") == "messageGroup"
                              ? DeduplicationScope::kMessageGroup
                              : DeduplicationScope::kQueue;
  return o;
}

absl::Status CheckTags(const SqsTagMap& tags) {
  for (const auto& [key, value] : tags) {
    if (key.empty() || key.size() > 128) {
      return InvalidParameterValueFor("Tags", key, "Tag keys must be 1 to 128 characters long.");
    }
    if (value.size() > 256) {
      return InvalidParameterValueFor("Tags", value.substr(0, 64),
                                      "Tag values must be at most 256 characters long.");
    }
    if (Lower(key.substr(0, 4)) == "aws:") {
      return InvalidParameterValueFor("Tags", key, "The prefix aws: is reserved for AWS use.");
    }
  }
  return absl::OkStatus();
}

}  // namespace riffle::detail
