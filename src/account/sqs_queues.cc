// SQS queues of an account: create (with the service's name rules and idempotence),
// URLs and ARNs, listing, deletion (a name is free again after 60 s), purge (one per 60 s),
// attributes (dead-letter queues by ARN), tags; and the admission of every call by URL
// (the queue, the call rates, the fault plan).
#include <algorithm>
#include <cctype>
#include <charconv>
#include <initializer_list>
#include <iterator>

#include "account/account_core.h"
#include "account/sqs_internal.h"
#include "common/names.h"
#include "fmt/format.h"
#include "riffle/sqs.h"
#include "riffle/status.h"
#define XXH_INLINE_ALL
#include "xxhash.h"

namespace riffle {

using detail::SqsQueueEntry;

namespace {

int64_t NowMs(detail::AccountCore& core) { return core.clock.NowMillis(); }

// Faults of `operation` on the queue `name` (or none): latency first, then the error.
absl::Status SqsFaults(detail::AccountCore& core, std::string_view operation, std::string_view name,
                       std::string_view arn) {
  if (!core.faults.active()) [[likely]] {
    return absl::OkStatus();
  }
  std::optional<FaultInjection> f =
      core.faults.Evaluate(operation, name, arn, {}, FaultScope::kRequest);
  if (!f) return absl::OkStatus();
  if (f->latency > absl::ZeroDuration()) core.Delay(f->latency);
  if (f->error.empty()) return absl::OkStatus();
  std::string message = f->message;
  if (message.empty()) {
    message = f->error == kQueueDoesNotExist
                  ? "The specified queue does not exist."
                  : detail::InjectedMessage(f->error, operation, {}, core.account_id(), {});
  }
  return NamedError(f->error, message);
}

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
}

// The queue name of an ARN of this account and region, or empty.
std::string_view NameFromArn(const detail::AccountCore& core, std::string_view arn) {
  const std::string prefix = fmt::format("arn:{}:sqs:{}:{}:", detail::ArnPartition(core.region()),
                                         core.region(), core.account_id());
  if (arn.size() <= prefix.size() || arn.substr(0, prefix.size()) != prefix) return {};
  return arn.substr(prefix.size());
}

// The queue name of a URL of this account and region, or empty. The forms the service
// hands out and takes back: http or https; host sqs.<region>.<domain>,
// <region>.queue.<domain>, or (us-east-1) queue.amazonaws.com, in any case; then
// /<account>/<name>.
std::string_view NameFromUrl(const detail::AccountCore& core, std::string_view url) {
  // Takes all of `pieces` off the front of `url`, in order, or nothing (no string is built:
  // every call by URL goes through here).
  auto consume = [&url](std::initializer_list<std::string_view> pieces, bool any_case) {
    std::string_view rest = url;
    for (std::string_view piece : pieces) {
      if (rest.size() < piece.size()) return false;
      for (std::size_t i = 0; i < piece.size(); ++i) {
        const char c = any_case
                           ? static_cast<char>(std::tolower(static_cast<unsigned char>(rest[i])))
                           : rest[i];
        if (c != piece[i]) return false;
      }
      rest.remove_prefix(piece.size());
    }
    url = rest;
    return true;
  };
  if (!consume({"https://"}, true) && !consume({"http://"}, true)) return {};
  const std::string_view region = core.region();
  const std::string_view domain = detail::EndpointDomain(region);
  if (!consume({"sqs.", region, ".", domain, "/"}, true) &&
      !consume({region, ".queue.", domain, "/"}, true) &&
      !(region == "us-east-1" && consume({"queue.amazonaws.com/"}, true))) {
    return {};
  }
  if (!consume({core.account_id(), "/"}, false)) return {};
  return url;
}

uint64_t TokenCheck(uint64_t secret, std::string_view prefix, std::string_view last) {
  const uint64_t h = XXH3_64bits_withSeed(prefix.data(), prefix.size(), secret);
  return XXH3_64bits_withSeed(last.data(), last.size(), h ^ 0x5153u);
}

}  // namespace

Sqs::Sqs(detail::AccountCore& core)
    : core_(core), registry_(std::make_unique<detail::SqsRegistry>()) {}

Sqs::~Sqs() = default;

std::string Sqs::QueueUrl(std::string_view queue_name) const {
  return fmt::format("https://sqs.{}.{}/{}/{}", core_.region(),
                     detail::EndpointDomain(core_.region()), core_.account_id(), queue_name);
}

std::string Sqs::QueueArn(std::string_view queue_name) const {
  return fmt::format("arn:{}:sqs:{}:{}:{}", detail::ArnPartition(core_.region()), core_.region(),
                     core_.account_id(), queue_name);
}

absl::StatusOr<std::shared_ptr<SqsQueueEntry>> Sqs::Admit(
    std::string_view operation, std::string_view queue_url,
    std::span<const std::string_view> groups) {
  if (queue_url.empty()) return detail::SqsMissingParameter("QueueUrl");
  const std::string_view name = NameFromUrl(core_, queue_url);
  if (name.empty()) return detail::QueueDoesNotExist();
  std::shared_ptr<SqsQueueEntry> entry;
  bool per_group = false;
  {
    std::lock_guard<std::mutex> lock(registry_->mu);
    auto it = registry_->queues.find(name);
    if (it == registry_->queues.end()) return detail::QueueDoesNotExist();
    entry = it->second;
    per_group = entry->per_group_rates;
  }
  static constexpr std::string_view kRated[] = {"SendMessage",
                                                "SendMessageBatch",
                                                "ReceiveMessage",
                                                "DeleteMessage",
                                                "DeleteMessageBatch",
                                                "ChangeMessageVisibility",
                                                "ChangeMessageVisibilityBatch"};
  if (core_.limits &&
      std::find(std::begin(kRated), std::end(kRated), operation) != std::end(kRated)) {
    auto throttled = [&](std::string_view scope) {
      return MakeError(absl::StatusCode::kResourceExhausted, kThrottlingException,
                       fmt::format("Rate exceeded for {} on queue {}{}: at most {} calls per "
                                   "second.",
                                   operation, entry->name, scope, detail::kFifoCallsPerSecond));
    };
    if (!per_group) {
      if (!core_.TakeCall(operation, entry->arn, detail::kFifoCallsPerSecond)) {
        return throttled("");
      }
    } else {
      for (size_t i = 0; i < groups.size(); ++i) {
        if (std::find(groups.begin(), groups.begin() + i, groups[i]) != groups.begin() + i) {
          continue;  // one call per distinct group
        }
        if (!core_.TakeCall(operation, fmt::format("{}/{}", entry->arn, groups[i]),
                            detail::kFifoCallsPerSecond)) {
          return throttled(fmt::format(" for message group {}", groups[i]));
        }
      }
    }
  }
  if (absl::Status s = SqsFaults(core_, operation, entry->name, entry->arn); !s.ok()) return s;
  return entry;
}

// ---- Dead-letter queues ----
namespace {

// The queue `attributes`' RedrivePolicy names (nullptr when there is none), checked: it
// exists, allows `source_arn` by its RedriveAllowPolicy, and makes no loop. REQUIRES the
// registry's mutex.
absl::StatusOr<std::shared_ptr<SqsQueueEntry>> ResolveDeadLetterLocked(
    const detail::AccountCore& core, detail::SqsRegistry& registry, std::string_view source_arn,
    const SqsAttributeMap& attributes) {
  auto it = attributes.find("RedrivePolicy");
  if (it == attributes.end()) return std::shared_ptr<SqsQueueEntry>();
  const std::string& json = it->second;
  absl::StatusOr<detail::ParsedRedrivePolicy> p = detail::ParseRedrivePolicy(json);
  if (!p.ok()) return p.status();
  auto bad = [&](std::string_view reason) {
    return detail::InvalidParameterValueFor("RedrivePolicy", json, reason);
  };
  const std::string_view name = NameFromArn(core, p->dead_letter_target_arn);
  auto q = registry.queues.find(name);
  if (name.empty() || q == registry.queues.end()) return bad("Dead letter target does not exist.");
  std::shared_ptr<SqsQueueEntry> dlq = q->second;
  for (const SqsQueueEntry* at = dlq.get(); at != nullptr; at = at->dead_letter.get()) {
    if (at->arn == source_arn) {
      return bad("The dead-letter queue would make a loop of dead-letter queues.");
    }
  }
  if (auto allow = dlq->attributes.find("RedriveAllowPolicy"); allow != dlq->attributes.end()) {
    absl::StatusOr<detail::ParsedRedriveAllowPolicy> a =
        detail::ParseRedriveAllowPolicy(allow->second);
    const bool allowed =
        a.ok() && (a->redrive_permission == "allowAll" ||
                   (a->redrive_permission == "byQueue" &&
                    std::find(a->source_queue_arns.begin(), a->source_queue_arns.end(),
                              source_arn) != a->source_queue_arns.end()));
    if (!allowed) {
      return bad(fmt::format("The RedriveAllowPolicy of {} does not allow {} as a source queue.",
                             dlq->arn, source_arn));
    }
  }
  return dlq;
}

FifoQueueOptions OptionsFor(const SqsQueueEntry& e, Clock* clock, const SqsAttributeMap& attrs,
                            const std::shared_ptr<SqsQueueEntry>& dlq) {
  FifoQueueOptions o = detail::OptionsFromAttributes(attrs);
  o.name = e.name;
  o.clock = clock;
  if (dlq) {
    const detail::ParsedRedrivePolicy p = *detail::ParseRedrivePolicy(attrs.at("RedrivePolicy"));
    o.redrive_policy = RedrivePolicy{dlq->queue.get(), p.max_receive_count};
  }
  return o;
}

}  // namespace

// ---- Queues ----

absl::StatusOr<CreateQueueOutput> Sqs::CreateQueue(const CreateQueueInput& input) {
  const std::string_view name = input.queue_name;
  if (name.empty()) return detail::SqsMissingParameter("QueueName");
  bool fifo = false;
  if (auto it = input.attributes.find("FifoQueue"); it != input.attributes.end()) {
    std::string v = it->second;
    for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (v != "true" && v != "false") return detail::InvalidAttributeValueFor("FifoQueue");
    fifo = v == "true";
  }
  constexpr std::string_view kSuffix = ".fifo";
  const bool has_suffix =
      name.size() > kSuffix.size() && name.substr(name.size() - kSuffix.size()) == kSuffix;
  const std::string_view stem = fifo && has_suffix ? name.substr(0, name.size() - 5) : name;
  const bool chars_ok = std::all_of(stem.begin(), stem.end(), IsNameChar);
  if (fifo && (!has_suffix || !chars_ok || name.size() > 80)) {
    return MakeError(absl::StatusCode::kInvalidArgument, kInvalidParameterValue,
                     "The name of a FIFO queue can only include alphanumeric characters, "
                     "hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in "
                     "length.");
  }
  if (!fifo && (!chars_ok || name.size() > 80)) {
    return MakeError(absl::StatusCode::kInvalidArgument, kInvalidParameterValue,
                     "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 "
                     "in length");
  }
  if (!fifo) {
    return MakeError(absl::StatusCode::kUnimplemented, kUnsupportedOperation,
                     fmt::format("Queue {}: riffle serves FIFO queues only; standard queues "
                                 "(no FifoQueue=true attribute) are not supported.",
                                 name));
  }
  const std::string arn = QueueArn(name);
  if (absl::Status s = SqsFaults(core_, "CreateQueue", name, arn); !s.ok()) return s;
  SqsAttributeMap attributes = detail::DefaultFifoAttributes();
  if (absl::Status s = detail::MergeAttributes(input.attributes, true, &attributes); !s.ok()) {
    return s;
  }
  if (absl::Status s = detail::CheckTags(input.tags); !s.ok()) return s;
  if (input.tags.size() > detail::kMaxTagsPerQueue) {
    return detail::InvalidParameterValueFor(
        "Tags", fmt::format("[{} tags]", input.tags.size()),
        fmt::format("A queue can have at most {} tags.", detail::kMaxTagsPerQueue));
  }
  const int64_t now = NowMs(core_);
  std::lock_guard<std::mutex> lock(registry_->mu);
  if (auto it = registry_->queues.find(name); it != registry_->queues.end()) {
    // As the service: only the attributes the request names are compared (normalized), so
    // CreateQueue with fewer attributes, or none, returns the existing queue's URL.
    const SqsAttributeMap& have = it->second->attributes;
    std::string differing;
    for (const auto& [k, v] : input.attributes) {
      auto want = attributes.find(k);
      auto h = have.find(k);
      const bool same =
          want == attributes.end() ? h == have.end() : h != have.end() && h->second == want->second;
      if (!same) {
        differing = k;
        break;
      }
    }
    if (differing.empty()) return CreateQueueOutput{it->second->url};
    return MakeError(
        absl::StatusCode::kAlreadyExists, kQueueNameExists,
        fmt::format("A queue already exists with the same name and a different value for "
                    "attribute {}",
                    differing));
  }
  if (auto it = registry_->deleted_ms.find(std::string(name)); it != registry_->deleted_ms.end()) {
    if (now - it->second < detail::kQueueNameReuseMs) {
      return MakeError(absl::StatusCode::kFailedPrecondition, kQueueDeletedRecently,
                       "You must wait 60 seconds after deleting a queue before you can create "
                       "another with the same name.");
    }
    registry_->deleted_ms.erase(it);
  }
  absl::StatusOr<std::shared_ptr<SqsQueueEntry>> dlq =
      ResolveDeadLetterLocked(core_, *registry_, arn, attributes);
  if (!dlq.ok()) return dlq.status();
  auto entry = std::make_shared<SqsQueueEntry>();
  entry->name = std::string(name);
  entry->url = QueueUrl(name);
  entry->arn = arn;
  entry->created_s = entry->last_modified_s = now / 1000;
  entry->per_group_rates = attributes["FifoThroughputLimit"] == "perMessageGroupId";
  entry->tags = input.tags;
  absl::StatusOr<std::unique_ptr<FifoQueue>> queue =
      FifoQueue::Create(OptionsFor(*entry, &core_.clock, attributes, *dlq));
  if (!queue.ok()) return queue.status();
  entry->attributes = std::move(attributes);
  entry->dead_letter = *std::move(dlq);
  entry->queue = *std::move(queue);
  registry_->queues.emplace(entry->name, entry);
  // Queues whose RedrivePolicy names this ARN (their dead-letter queue was deleted and is
  // created again) move their messages here from now on, if this queue's
  // RedriveAllowPolicy lets them and no loop forms.
  for (auto& [other_name, other] : registry_->queues) {
    if (other == entry || other->dead_letter || !other->attributes.contains("RedrivePolicy")) {
      continue;
    }
    absl::StatusOr<std::shared_ptr<SqsQueueEntry>> target =
        ResolveDeadLetterLocked(core_, *registry_, other->arn, other->attributes);
    if (!target.ok() || *target != entry) continue;
    if (other->queue->SetAttributes(OptionsFor(*other, &core_.clock, other->attributes, entry))
            .ok()) {
      other->dead_letter = entry;
    }
  }
  return CreateQueueOutput{entry->url};
}

absl::StatusOr<GetQueueUrlOutput> Sqs::GetQueueUrl(const GetQueueUrlInput& input) {
  if (input.queue_name.empty()) return detail::SqsMissingParameter("QueueName");
  const std::string arn = QueueArn(input.queue_name);
  if (absl::Status s = SqsFaults(core_, "GetQueueUrl", input.queue_name, arn); !s.ok()) return s;
  if (!input.queue_owner_aws_account_id.empty() &&
      input.queue_owner_aws_account_id != core_.account_id()) {
    return detail::QueueDoesNotExist();
  }
  std::lock_guard<std::mutex> lock(registry_->mu);
  auto it = registry_->queues.find(input.queue_name);
  if (it == registry_->queues.end()) return detail::QueueDoesNotExist();
  return GetQueueUrlOutput{it->second->url};
}

absl::StatusOr<ListQueuesOutput> Sqs::ListQueues(const ListQueuesInput& input) {
  if (input.max_results && (*input.max_results < 1 || *input.max_results > 1000)) {
    return detail::InvalidParameterValueFor("MaxResults", std::to_string(*input.max_results),
                                            "MaxResults must be an integer between 1 and 1000.");
  }
  if (absl::Status s = SqsFaults(core_, "ListQueues", {}, {}); !s.ok()) return s;
  const std::string_view prefix = input.queue_name_prefix;
  std::string after;
  if (!input.next_token.empty()) {
    const std::string_view token = input.next_token;
    const size_t colon = token.find(':');
    uint64_t check = 0;
    bool ok = colon == 16;
    if (ok) {
      auto r = std::from_chars(token.data(), token.data() + 16, check, 16);
      ok = r.ec == std::errc() && r.ptr == token.data() + 16;
    }
    if (ok) {
      after = std::string(token.substr(17));
      ok = check == TokenCheck(core_.secret, prefix, after);
    }
    if (!ok) {
      return detail::InvalidParameterValueFor(
          "NextToken", token.substr(0, 200),
          "The token was not issued by ListQueues of this account for this QueueNamePrefix.");
    }
  }
  const size_t limit = static_cast<size_t>(input.max_results.value_or(1000));
  ListQueuesOutput out;
  std::lock_guard<std::mutex> lock(registry_->mu);
  auto it =
      after.empty() ? registry_->queues.lower_bound(prefix) : registry_->queues.upper_bound(after);
  for (; it != registry_->queues.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (out.queue_urls.size() == limit) {
      if (input.max_results) {
        const std::string& last = std::prev(it)->first;
        out.next_token = fmt::format("{:016x}:{}", TokenCheck(core_.secret, prefix, last), last);
      }
      break;
    }
    out.queue_urls.push_back(it->second->url);
  }
  return out;
}

absl::Status Sqs::DeleteQueue(const DeleteQueueInput& input) {
  absl::StatusOr<std::shared_ptr<SqsQueueEntry>> entry = Admit("DeleteQueue", input.queue_url);
  if (!entry.ok()) return entry.status();
  std::lock_guard<std::mutex> lock(registry_->mu);
  auto it = registry_->queues.find((*entry)->name);
  if (it == registry_->queues.end() || it->second != *entry) return detail::QueueDoesNotExist();
  registry_->queues.erase(it);
  // Its messages go at once, also from a long poll that began before.
  (*entry)->queue->PurgeQueue();
  const int64_t now = NowMs(core_);
  absl::erase_if(registry_->deleted_ms,
                 [now](const auto& d) { return now - d.second >= detail::kQueueNameReuseMs; });
  registry_->deleted_ms[(*entry)->name] = now;
  // Queues that moved their messages here keep their RedrivePolicy (as on the service) but
  // move nothing until a queue of this ARN exists again.
  for (auto& [name, other] : registry_->queues) {
    if (other->dead_letter != *entry) continue;
    SqsAttributeMap without = other->attributes;
    without.erase("RedrivePolicy");
    (void)other->queue->SetAttributes(OptionsFor(*other, &core_.clock, without, nullptr));
    other->dead_letter.reset();
  }
  return absl::OkStatus();
}

absl::Status Sqs::PurgeQueue(const PurgeQueueInput& input) {
  absl::StatusOr<std::shared_ptr<SqsQueueEntry>> entry = Admit("PurgeQueue", input.queue_url);
  if (!entry.ok()) return entry.status();
  SqsQueueEntry& e = **entry;
  {
    const int64_t now = NowMs(core_);
    std::lock_guard<std::mutex> lock(registry_->mu);
    if (e.last_purge_ms != INT64_MIN && now - e.last_purge_ms < detail::kPurgeIntervalMs) {
      return MakeError(
          absl::StatusCode::kFailedPrecondition, kPurgeQueueInProgress,
          fmt::format("Only one PurgeQueue operation on {} is allowed every 60 seconds.", e.name));
    }
    e.last_purge_ms = now;
  }
  e.queue->PurgeQueue();
  return absl::OkStatus();
}

namespace {

// The queue attributes GetQueueAttributes returns: computed, and settable.
constexpr std::string_view kComputedAttributes[] = {"ApproximateNumberOfMessages",
                                                    "ApproximateNumberOfMessagesDelayed",
                                                    "ApproximateNumberOfMessagesNotVisible",
                                                    "CreatedTimestamp",
                                                    "LastModifiedTimestamp",
                                                    "QueueArn"};
constexpr std::string_view kSettableAttributes[] = {"ContentBasedDeduplication",
                                                    "DeduplicationScope",
                                                    "DelaySeconds",
                                                    "FifoQueue",
                                                    "FifoThroughputLimit",
                                                    "KmsDataKeyReusePeriodSeconds",
                                                    "KmsMasterKeyId",
                                                    "MaximumMessageSize",
                                                    "MessageRetentionPeriod",
                                                    "Policy",
                                                    "ReceiveMessageWaitTimeSeconds",
                                                    "RedriveAllowPolicy",
                                                    "RedrivePolicy",
                                                    "SqsManagedSseEnabled",
                                                    "VisibilityTimeout"};

}  // namespace

bool detail::IsQueueAttributeName(std::string_view name) {
  return name == "All" ||
         std::find(std::begin(kComputedAttributes), std::end(kComputedAttributes), name) !=
             std::end(kComputedAttributes) ||
         std::find(std::begin(kSettableAttributes), std::end(kSettableAttributes), name) !=
             std::end(kSettableAttributes);
}

absl::StatusOr<GetQueueAttributesOutput> Sqs::GetQueueAttributes(
    const GetQueueAttributesInput& input) {
  absl::StatusOr<std::shared_ptr<SqsQueueEntry>> entry =
      Admit("GetQueueAttributes", input.queue_url);
  if (!entry.ok()) return entry.status();
  SqsQueueEntry& e = **entry;
  bool all = false;
  for (const std::string& n : input.attribute_names) {
    if (!detail::IsQueueAttributeName(n)) return detail::InvalidAttributeName(n);
    all = all || n == "All";
  }
  auto wanted = [&](std::string_view n) {
    return all || std::find(input.attribute_names.begin(), input.attribute_names.end(), n) !=
                      input.attribute_names.end();
  };
  GetQueueAttributesOutput out;
  if (input.attribute_names.empty()) return out;
  const QueueAttributes counts = e.queue->GetQueueAttributes();
  std::lock_guard<std::mutex> lock(registry_->mu);
  for (std::string_view n : kSettableAttributes) {
    auto it = e.attributes.find(std::string(n));
    if (it != e.attributes.end() && wanted(n)) out.attributes.emplace(n, it->second);
  }
  const std::pair<std::string_view, std::string> computed[] = {
      {"ApproximateNumberOfMessages", std::to_string(counts.approximate_number_of_messages)},
      {"ApproximateNumberOfMessagesDelayed",
       std::to_string(counts.approximate_number_of_messages_delayed)},
      {"ApproximateNumberOfMessagesNotVisible",
       std::to_string(counts.approximate_number_of_messages_not_visible)},
      {"CreatedTimestamp", std::to_string(e.created_s)},
      {"LastModifiedTimestamp", std::to_string(e.last_modified_s)},
      {"QueueArn", e.arn}};
  for (const auto& [n, v] : computed) {
    if (wanted(n)) out.attributes.emplace(n, v);
  }
  return out;
}

absl::Status Sqs::SetQueueAttributes(const SetQueueAttributesInput& input) {
  absl::StatusOr<std::shared_ptr<SqsQueueEntry>> entry =
      Admit("SetQueueAttributes", input.queue_url);
  if (!entry.ok()) return entry.status();
  SqsQueueEntry& e = **entry;
  if (input.attributes.empty()) return detail::SqsMissingParameter("Attributes");
  std::lock_guard<std::mutex> lock(registry_->mu);
  SqsAttributeMap merged = e.attributes;
  if (absl::Status s = detail::MergeAttributes(input.attributes, false, &merged); !s.ok()) return s;
  // The RedrivePolicy is checked when the request sets it: one kept from before stays as it
  // is even when its dead-letter queue was deleted or stopped allowing this queue since (as
  // DeleteQueue leaves it), and does not fail a change of another attribute.
  std::shared_ptr<SqsQueueEntry> dlq = e.dead_letter;
  if (input.attributes.contains("RedrivePolicy")) {
    absl::StatusOr<std::shared_ptr<SqsQueueEntry>> resolved =
        ResolveDeadLetterLocked(core_, *registry_, e.arn, merged);
    if (!resolved.ok()) return resolved.status();
    dlq = *std::move(resolved);
  }
  if (absl::Status s = e.queue->SetAttributes(OptionsFor(e, &core_.clock, merged, dlq)); !s.ok()) {
    return s;
  }
  e.per_group_rates = merged["FifoThroughputLimit"] == "perMessageGroupId";
  e.attributes = std::move(merged);
  e.dead_letter = std::move(dlq);
  e.last_modified_s = NowMs(core_) / 1000;
  return absl::OkStatus();
}

absl::Status Sqs::TagQueue(const TagQueueInput& input) {
  absl::StatusOr<std::shared_ptr<SqsQueueEntry>> entry = Admit("TagQueue", input.queue_url);
  if (!entry.ok()) return entry.status();
  if (input.tags.empty()) return detail::SqsMissingParameter("Tags");
  if (absl::Status s = detail::CheckTags(input.tags); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(registry_->mu);
  SqsTagMap merged = (*entry)->tags;
  for (const auto& [k, v] : input.tags) merged[k] = v;
  if (merged.size() > detail::kMaxTagsPerQueue) {
    return detail::InvalidParameterValueFor(
        "Tags", fmt::format("[{} tags]", input.tags.size()),
        fmt::format("Too many tags added for queue {}: a queue can have at most {} tags.",
                    (*entry)->name, detail::kMaxTagsPerQueue));
  }
  (*entry)->tags = std::move(merged);
  return absl::OkStatus();
}

absl::Status Sqs::UntagQueue(const UntagQueueInput& input) {
  absl::StatusOr<std::shared_ptr<SqsQueueEntry>> entry = Admit("UntagQueue", input.queue_url);
  if (!entry.ok()) return entry.status();
  if (input.tag_keys.empty()) return detail::SqsMissingParameter("TagKeys");
  std::lock_guard<std::mutex> lock(registry_->mu);
  for (const std::string& k : input.tag_keys) (*entry)->tags.erase(k);
  return absl::OkStatus();
}

absl::StatusOr<ListQueueTagsOutput> Sqs::ListQueueTags(const ListQueueTagsInput& input) {
  absl::StatusOr<std::shared_ptr<SqsQueueEntry>> entry = Admit("ListQueueTags", input.queue_url);
  if (!entry.ok()) return entry.status();
  std::lock_guard<std::mutex> lock(registry_->mu);
  return ListQueueTagsOutput{(*entry)->tags};
}

}  // namespace riffle
