// Kinesis: resolving streams by name and ARN, states, call rates, pagination tokens.
#include <algorithm>
#include <charconv>

#include "account/kinesis_internal.h"
#include "fmt/format.h"
#include "riffle/status.h"

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

namespace riffle::detail {
namespace {

// Splits off the text before the next ':'.
bool Take(std::string_view& s, std::string_view* field) {
  const std::size_t colon = s.find(':');
  if (colon == std::string_view::npos) return false;
  *field = s.substr(0, colon);
  s.remove_prefix(colon + 1);
  return true;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The API's name pattern, [a-zA-Z0-9_.-]+.
bool NameChars(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

bool NoSpace(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  });
}

// The prefix arn:aws*:kinesis:<region>:<12 digits>:stream/ and what follows it.
std::optional<ParsedArn> ParsePrefix(std::string_view arn, std::string_view* rest) {
  std::string_view s = arn, field;
  ParsedArn p;
  if (!Take(s, &field) || field != "arn") return std::nullopt;
  if (!Take(s, &p.partition) || p.partition.substr(0, 3) != "aws") return std::nullopt;
  if (!Take(s, &field) || field != "kinesis") return std::nullopt;
  if (!Take(s, &p.region)) return std::nullopt;
  if (!Take(s, &p.account) || p.account.size() != 12 || !AllDigits(p.account)) return std::nullopt;
  if (s.substr(0, 7) != "stream/" || s.size() == 7 || !NoSpace(s)) return std::nullopt;
  *rest = s.substr(7);
  return p;
}

struct CallRate {
  std::string_view operation;
  int per_second;
  bool per_stream;
};

// The service's documented transactions per second (docs/aws-account.md, with sources).
constexpr CallRate kCallRates[] = {
    {"AddTagsToStream", 5, false},
    {"CreateStream", 5, false},
    {"DeleteStream", 5, false},
    {"DeregisterStreamConsumer", 5, true},
    {"DescribeLimits", 1, false},
    {"DescribeStream", 10, false},
    {"DescribeStreamConsumer", 20, true},
    {"DescribeStreamSummary", 20, false},
    {"ListShards", 1000, true},
    {"ListStreamConsumers", 5, true},
    {"ListStreams", 5, false},
    {"ListTagsForStream", 5, false},
    {"MergeShards", 5, false},
    {"RegisterStreamConsumer", 5, false},
    {"RemoveTagsFromStream", 5, false},
    {"SplitShard", 5, false},
    {"UpdateShardCount", 10, false},
};

uint64_t TokenCheck(const PageToken& t, uint64_t secret) {
  const std::string fields = fmt::format("{}.{}.{}.{}.{}.{}.{}", t.kind, t.tag, t.issued_ms,
                                         t.after, t.filter, t.filter_ms, t.name);
  return XXH3_64bits_withSeed(fields.data(), fields.size(), secret);
}

}  // namespace

std::optional<ParsedArn> ParseStreamArn(std::string_view arn) {
  std::string_view rest;
  std::optional<ParsedArn> p = ParsePrefix(arn, &rest);
  if (!p) return std::nullopt;
  p->stream = rest;
  return p;
}

std::optional<ParsedArn> ParseConsumerArn(std::string_view arn) {
  std::string_view rest;
  std::optional<ParsedArn> p = ParsePrefix(arn, &rest);
  if (!p) return std::nullopt;
  const std::size_t slash = rest.find("/consumer/");
  if (slash == std::string_view::npos) return std::nullopt;
  p->stream = rest.substr(0, slash);
  std::string_view consumer = rest.substr(slash + 10);
  const std::size_t colon = consumer.rfind(':');
  if (colon == std::string_view::npos || !AllDigits(consumer.substr(colon + 1))) {
    return std::nullopt;
  }
  p->consumer = consumer.substr(0, colon);
  // The ConsumerARN pattern names both parts [a-zA-Z0-9_.-]+.
  if (!NameChars(p->stream) || !NameChars(p->consumer)) return std::nullopt;
  return p;
}

absl::Status StreamNotFound(std::string_view name, std::string_view account_id) {
  return ResourceNotFoundError(
      fmt::format("Stream {} under account {} not found.", name, account_id));
}

absl::Status NotActive(std::string_view name, std::string_view account_id, StreamStatus status) {
  return ResourceInUseError(
      fmt::format("Stream {} under account {} not ACTIVE, instead in state {}", name, account_id,
                  StreamStatusName(status)));
}

StreamStatus StatusOf(const StreamEntry& e, int64_t now_ms) {
  if (e.deleted_at_ms.load(std::memory_order_acquire) != INT64_MAX) return StreamStatus::kDeleting;
  if (now_ms < e.active_at_ms) return StreamStatus::kCreating;
  if (now_ms < e.updating_until_ms.load(std::memory_order_acquire)) return StreamStatus::kUpdating;
  return e.stream->DescribeStreamSummary().stream_status;  // UPDATING while a reshard runs
}

absl::Status ResolveStream(AccountCore& core, const KinesisRegistry& registry,
                           std::string_view name, std::string_view arn, StreamAccess access,
                           StreamEntry** out, Violations* fields) {
  StreamEntry* e = nullptr;
  if (arn.empty() && !name.empty()) [[likely]] {
    e = registry.FindByName(name);  // a registered name is a valid one
  }
  if (e == nullptr) {
    Violations own;
    Violations& v = fields != nullptr ? *fields : own;
    if (!name.empty()) v.Name("streamName", name);
    std::optional<ParsedArn> parsed;
    if (!arn.empty()) {
      parsed = ParseStreamArn(arn);
      v.Pattern("streamARN", arn, kStreamArnPattern, parsed.has_value());
      v.MaxLength("streamARN", arn, arn.size(), 2048);
    }
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
    if (name.empty() && arn.empty()) {
      return InvalidArgumentError("Either StreamName or StreamARN must be provided.");
    }
    std::string_view target = name;
    if (parsed) {
      if (!name.empty() && name != parsed->stream) {
        return InvalidArgumentError(
            fmt::format("StreamARN {} and StreamName {} do not name the same stream.", arn, name));
      }
      target = parsed->stream;
      // Another partition, region or account: not one of this account's streams.
      if (parsed->partition != ArnPartition(core.region()) || parsed->region != core.region() ||
          parsed->account != core.account_id()) {
        return StreamNotFound(target, parsed->account);
      }
    }
    e = registry.FindByName(target);
    if (e == nullptr) return StreamNotFound(target, core.account_id());
  }
  if (e->timed.load(std::memory_order_acquire) || access == StreamAccess::kModify) {
    // Whatever its state, the request's own violations come first.
    if (fields != nullptr && !fields->empty()) return fields->ToStatus();
    const int64_t now_ms = core.clock.NowMillis();
    if (e->GoneAt(now_ms)) {
      return StreamNotFound(e->name, core.account_id());  // its deletion has completed
    }
    const bool creating = now_ms < e->active_at_ms;
    const bool deleting = e->deleted_at_ms.load(std::memory_order_acquire) != INT64_MAX;
    if (access == StreamAccess::kData && creating) {
      return StreamNotFound(e->name, core.account_id());
    }
    if (access == StreamAccess::kModify && (creating || deleting)) {
      return NotActive(e->name, core.account_id(),
                       creating ? StreamStatus::kCreating : StreamStatus::kDeleting);
    }
  }
  *out = e;
  return absl::OkStatus();
}

absl::Status CheckCallRate(AccountCore& core, std::string_view operation, const StreamEntry* e,
                           std::string_view name) {
  for (const CallRate& r : kCallRates) {
    if (r.operation != operation) continue;
    const std::string_view scope = r.per_stream && e != nullptr ? std::string_view(e->arn) : "";
    if (core.TakeCall(operation, scope, r.per_second)) return absl::OkStatus();
    // The service names the stream a call is about, whether the rate is the stream's or the
    // account's ("Rate exceeded for stream <name> under account <id>.", as SDKs and tools
    // that retry on it match it); calls about no stream get the operation's rate.
    const std::string_view stream = e != nullptr ? std::string_view(e->name) : name;
    if (!stream.empty()) {
      return LimitExceededError(
          fmt::format("Rate exceeded for stream {} under account {}.", stream, core.account_id()));
    }
    return LimitExceededError(
        fmt::format("Rate exceeded for {} under account {}: at most {} calls per second.",
                    operation, core.account_id(), r.per_second));
  }
  return absl::OkStatus();
}

std::string EncodePageToken(const PageToken& t, uint64_t secret) {
  std::string out = fmt::format("{}1.{:x}.{:x}.{:x}.{}.{:x}.{:x}", t.kind, t.tag,
                                static_cast<uint64_t>(t.issued_ms), t.after, t.filter,
                                static_cast<uint64_t>(t.filter_ms), TokenCheck(t, secret));
  if (!t.name.empty()) fmt::format_to(std::back_inserter(out), ".{}", t.name);
  return out;
}

absl::StatusOr<PageToken> DecodePageToken(std::string_view text, char kind, uint64_t secret,
                                          int64_t now_ms) {
  auto invalid = [&] {
    return InvalidArgumentError(fmt::format(
        "Invalid NextToken: {} was not issued by this operation of account.", text.substr(0, 200)));
  };
  if (text.size() < 3 || text[0] != kind || text[1] != '1' || text[2] != '.') return invalid();
  std::string_view s = text.substr(3);
  PageToken t;
  t.kind = kind;
  uint64_t fields[6];
  for (int i = 0; i < 6; ++i) {
    const int base = i == 3 ? 10 : 16;
    const char* begin = s.data();
    const char* end = s.data() + s.size();
    int64_t filter = 0;
    std::from_chars_result r = i == 3 ? std::from_chars(begin, end, filter, base)
                                      : std::from_chars(begin, end, fields[i], base);
    if (r.ec != std::errc() || r.ptr == begin) return invalid();
    if (i == 3) fields[i] = static_cast<uint64_t>(filter);
    s.remove_prefix(static_cast<std::size_t>(r.ptr - begin));
    if (i < 5) {
      if (s.empty() || s[0] != '.') return invalid();
      s.remove_prefix(1);
    }
  }
  t.tag = fields[0];
  t.issued_ms = static_cast<int64_t>(fields[1]);
  t.after = fields[2];
  t.filter = static_cast<int>(static_cast<int64_t>(fields[3]));
  t.filter_ms = static_cast<int64_t>(fields[4]);
  const uint64_t check = fields[5];
  if (!s.empty()) {
    if (s[0] != '.') return invalid();
    t.name = std::string(s.substr(1));
  }
  if (check != TokenCheck(t, secret)) return invalid();
  if (now_ms - t.issued_ms > kNextTokenLifetimeMs) {
    return ExpiredNextTokenError(fmt::format(
        "The pagination token passed to the operation is expired: it was issued at {} and a "
        "NextToken lives {} seconds.",
        absl::FormatTime(absl::FromUnixMillis(t.issued_ms), absl::UTCTimeZone()),
        kNextTokenLifetimeMs / 1000));
  }
  return t;
}

}  // namespace riffle::detail
