// riffle::Account through its four services (Kinesis, Firehose, S3, SQS) and its fault plan,
// driven by random operation sequences on a ManualClock. Names, ARNs, URLs, keys, data,
// sequence numbers, iterators, tokens and receipt handles come from the input, or from
// earlier results by index, so that both the validators and the valid paths are reached.
// Checked: no call crashes, hangs or throws; every non-OK status carries an error name of
// status.h and a message; a record GetRecords or a subscription returns was put with that
// sequence number, partition key and data, and sequence numbers increase within one read;
// PutRecords, PutRecordBatch and the SQS batches answer one entry per request entry, with
// the documented error codes; a put with SequenceNumberForOrdering of an earlier put of the
// same key gets a larger number; an altered iterator, token or receipt handle is refused; a
// received SQS message was sent (to that queue, unless a redrive policy was set), with its
// body and the body's MD5; an S3 object reads back as written (unless a delivery stream
// could have written its bucket since) with its ETag; lists come in their documented order.
//
// Input: a header line, then at most 200 lines of '|'-separated fields; the first field of
// each line is a one-character opcode, fields left out are empty.
//   Header: flags|create ms|delete ms|update ms|region|account id|shard quota|shards per stream
//     The first byte's low bit turns the limits on ('1' on, '0' off). Further characters of
//     the flags: 'x' XXH3 routing, 'r' OverflowPolicy::kRejectPut, 't' 16 KiB rings (else
//     64 KiB; records of at most 2 KiB). Durations are clamped to 0..120,000 ms, the shard
//     quota (0: the region's) to -1..64, shards per stream to 0..16 (empty: the default);
//     options Account::Create refuses end the input.
//   Kinesis:
//     C|name|shards|mode(P/O)|tag=value...        CreateStream
//     D|stream|enforce(0/1)                        DeleteStream
//     I|stream|limit|start shard   J|stream        DescribeStream, DescribeStreamSummary
//     L|limit|start name|token     ?               ListStreams, DescribeLimits
//     Q|stream|token|start shard|max|filter(a/h/f/l/t/T)|filter shard|filter time|created
//     O|stream ARN|mode(P/O)                       UpdateStreamMode
//     R|stream|+/-|hours                           Increase/DecreaseStreamRetentionPeriod
//     N|stream|shard|hash key   M|stream|shard|adjacent   U|stream|target
//     P|stream|key|data|explicit hash key|sequence number for ordering
//     B|stream|key|data|explicit hash key[|key|data|explicit hash key...]   PutRecords
//     T|stream|shard|type(h/l/a/f/t)|sequence number|time        GetShardIterator
//     G|iterator|limit|stream ARN|reads(1..4)     GetRecords, following NextShardIterator
//     E|stream ARN|consumer|lossless(0/1)          RegisterStreamConsumer
//     F|stream ARN|consumer|consumer ARN   H|...  Deregister/DescribeStreamConsumer
//     K|stream ARN|token|max|created              ListStreamConsumers
//     S|consumer ARN|shard|type|sequence number|time   SubscribeToShard
//     V|subscription index or *|polls(1..8)        Subscription::Poll
//     A|stream|key=value...  X|stream|key...  Y|stream|start key|limit   tags
//     W|stream|+/-|type(K/N)|key id                Start/StopStreamEncryption
//     Z|stream|+/-|metrics(digits 0..7)            Enable/DisableEnhancedMonitoring
//   Firehose (delivery streams into the account's buckets):
//     i|name|bucket|prefix|error prefix|size MiB|interval s|compression|flags|source stream
//       |tag=value...   CreateDeliveryStream (DirectPut, or KinesisStreamAsSource with a
//       source stream); compression u/g/z/s/h or as written; flags: p processor, P
//       processing without one, n newline delimiter, d dynamic partitioning, D without a
//       function, r/R NumberOfRetries 0/301, l LambdaArn, o no destination, e 10 s retries,
//       b 4 KiB backpressure bound
//     w|name|version(# current)|destination id(# the one)|prefix|error prefix|size|interval
//       |compression|bucket|flags(p/P/0/d/D)   UpdateDestination; '-' leaves a member out
//     p|name|data  r|name|data...  s|name|limit|start id  l|limit|type(d/k)|start name
//     x|name|allow force(0/1)  y|name|+ key=value... / - key... / ? start key|limit
//     z[|name]     Firehose::Poll, or Flush of one delivery stream
//   S3: 1|bucket[|d]  2|bucket|key|body  3|bucket|key  4|bucket|key
//     5|bucket|prefix|delimiter|max keys|token|start after  6|bucket|key  7
//     CreateBucket with 'd' keeps the bucket in a directory of this input's; no delivery
//     stream is pointed at such a bucket. No file may appear outside the buckets'
//     directories.
//   SQS (queue: a name, whose URL is used, or '=' and a URL as written):
//     c|name|fifo(1: FifoQueue=true, 0: none, else the value)|attribute=value...|tag:k=v
//     n|name|owner  j|prefix|max|token  k|queue  o|queue  v|queue
//     g|queue|attribute...  h|queue|attribute=value...  t|queue|k=v...  u|queue|key...
//     m|queue|group|body|deduplication id|attribute|type|value|delay|trace header
//     b|queue|id|group|body|deduplication id[|id|group|body|deduplication id...]
//     q|queue|max|visibility|wait|attempt id|system attributes,...|message attributes,...
//     d|queue|handle  e|queue|handle...  a|queue|handle|timeout  f|queue|handle|timeout...
//   Clock and faults:
//     +|seconds|milliseconds                       advance the clock (at most 4 h a line)
//     !|operation|trigger(n/e/f/d)|count|error|resource|shard|latency ms   FaultPlan::Add
//       (FailNext, Every, Fraction count/100, Delay; at most 8 rules; the error is a name
//       of status.h, or a number that picks one; latency at most 2,000 ms). The rules that
//       can fail PutObject are removed before a delivery stream can go, as firehose.h asks.
//     ~[|rule id]                                  FaultPlan::Clear or Remove
// Stream fields: a name, '@' and a name (its ARN), or '=' and text used as the ARN.
// ARN-only fields: a name (its ARN) or '=' and text. Shard fields: 1..3 digits name
// shardId-<n>, anything else is used as written. Hash keys: '%' the middle of the named
// shard's range (SplitShard; elsewhere 0), '%a/b' a/b of the key space. "#k" names the
// k-th remembered sequence number, iterator, consumer ARN, token or receipt handle (modulo
// their count; "#-1" the latest), "~k" the same altered in its middle character. Data,
// keys and bodies "*Nc" ("*300x") are N copies of c (N <= 9000), "&a,b,..." a KPL
// aggregate of user records with data a, b, ... Times are seconds from the clock's now.
#include <algorithm>
#include <charconv>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_support.h"
#include "riffle/account.h"
#include "riffle/clock.h"
#include "riffle/hash_key.h"
#include "riffle/kpl.h"
#include "riffle/subscription.h"

namespace {

using riffle_fuzz::Describe;
using riffle_fuzz::Printable;
using riffle_fuzz::Split;
using Fields = std::vector<std::string_view>;

constexpr size_t kMaxLines = 200;
constexpr size_t kMaxRemembered = 64;  // of each kind of reference
constexpr int kMaxShards = 8;
constexpr size_t kMaxEntries = 12;  // PutRecords, PutRecordBatch entries
constexpr size_t kMaxSqsEntries = 11;
constexpr size_t kMaxFaultRules = 8;
constexpr size_t kMaxSubscriptions = 4;
constexpr int64_t kMaxRepeat = 9000;
constexpr int64_t kMaxAdvanceSeconds = 4 * 3600;
constexpr std::string_view kDestinationId = "destinationId-000000000001";

int64_t Int(std::string_view s, int64_t fallback = 0) {
  int64_t v = fallback;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() ? v : fallback;
}

int Clamp(int64_t v, int64_t low, int64_t high) {
  return static_cast<int>(std::clamp(v, low, high));
}

std::string_view Field(const Fields& f, size_t i) { return i < f.size() ? f[i] : ""; }

// "k=v" as (k, v); no '=': (s, "").
std::pair<std::string_view, std::string_view> KeyValue(std::string_view s) {
  const size_t eq = s.find('=');
  if (eq == std::string_view::npos) return {s, ""};
  return {s.substr(0, eq), s.substr(eq + 1)};
}

// "*Nc" expands to N copies of c; "&a,b,..." is a KPL aggregate of user records with data
// a, b, ... (partition keys u0, u1, ...); anything else is itself.
std::string Bytes(std::string_view s) {
  if (s.starts_with('&')) {
    const std::vector<std::string_view> items = Split(s.substr(1), ',');
    std::vector<std::string> keys;
    std::vector<riffle::PutRecordsRequestEntry> records;
    keys.reserve(items.size());
    for (size_t i = 0; i < items.size() && i < 20; ++i) {
      keys.push_back(fmt::format("u{}", i));
      records.push_back({keys.back(), items[i], {}});
    }
    return riffle::kpl::EncodeAggregate(records);
  }
  if (s.size() >= 3 && s[0] == '*') {
    size_t digits = 1;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    if (digits > 1 && digits + 1 == s.size()) {
      const int64_t n = std::min<int64_t>(Int(s.substr(1, digits - 1)), kMaxRepeat);
      return std::string(static_cast<size_t>(n), s.back());
    }
  }
  return std::string(s);
}

// Changes the middle character of `s` to another character of the same kind, so that the
// value it encodes changes.
std::string Altered(std::string s) {
  if (s.empty()) return "x";
  char& c = s[s.size() / 2];
  if (c >= '0' && c <= '9') {
    c = c == '0' ? '1' : '0';
  } else if (c >= 'a' && c <= 'z') {
    c = c == 'a' ? 'b' : 'a';
  } else if (c >= 'A' && c <= 'Z') {
    c = c == 'A' ? 'B' : 'A';
  } else {
    c = c == '_' ? '-' : '_';
  }
  return s;
}

// A remembered reference: "#k" (the k-th, modulo the count; "#-1" the latest) or "~k" (the
// same, altered); nullopt for text.
struct Reference {
  std::string value;
  bool altered = false;
};
std::optional<Reference> Remembered(std::string_view field, const std::deque<std::string>& list) {
  if (field.size() < 2 || (field[0] != '#' && field[0] != '~') || list.empty()) return std::nullopt;
  const int64_t k = Int(field.substr(1), INT64_MIN);
  if (k == INT64_MIN) return std::nullopt;
  const uint64_t n = list.size();
  const uint64_t i =
      k >= 0 ? static_cast<uint64_t>(k) % n : n - 1 - (static_cast<uint64_t>(-(k + 1)) % n);
  std::string v = list[i];
  if (field[0] == '~') return Reference{Altered(std::move(v)), true};
  return Reference{std::move(v), false};
}

void Remember(std::deque<std::string>& list, std::string value) {
  if (value.empty()) return;
  if (list.size() == kMaxRemembered) list.pop_front();
  list.push_back(std::move(value));
}

// True when key(item) strictly increases along `items`.
template <class T, class Key>
bool Sorted(const std::vector<T>& items, Key key) {
  for (size_t i = 1; i < items.size(); ++i) {
    if (!(key(items[i - 1]) < key(items[i]))) return false;
  }
  return true;
}

std::string ShardId(std::string_view field) {
  if (!field.empty() && field.size() <= 3 &&
      std::all_of(field.begin(), field.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return fmt::format("shardId-{:012}", Int(field));
  }
  return std::string(field);
}

std::string QuotedMd5(std::string_view body) {
  return fmt::format("\"{}\"", riffle::Md5OfMessageBody(body));
}

// What a delivery stream's processor does with a record, by its first byte: '!' fails it,
// '-' drops it, '^' makes the whole call throw; anything else passes with its ASCII
// letters in upper case.
std::vector<riffle::ProcessorOutput> Process(std::span<const riffle::ProcessorInput> in) {
  std::vector<riffle::ProcessorOutput> out;
  for (const riffle::ProcessorInput& r : in) {
    const char first = r.data.empty() ? '\0' : r.data[0];
    if (first == '^') throw std::runtime_error("processor failure");
    riffle::ProcessorOutput o;
    o.record_id = r.record_id;
    o.result = first == '!'   ? riffle::ProcessingResult::kProcessingFailed
               : first == '-' ? riffle::ProcessingResult::kDropped
                              : riffle::ProcessingResult::kOk;
    if (o.result == riffle::ProcessingResult::kOk) {
      o.data = std::string(r.data);
      for (char& c : o.data) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      }
    }
    out.push_back(std::move(o));
  }
  return out;
}

// Dynamic partitioning: key "k" is the record's first byte; an empty record has none.
bool PartitionKey(std::string_view data, const riffle::RecordMetadata&,
                  riffle::PartitionKeys& keys) {
  if (data.empty()) return false;
  keys.Set("k", data.substr(0, 1));
  return true;
}

struct PutRecordInfo {
  std::string key;
  std::string data;
  bool explicit_hash_key = false;
};

struct SentMessage {
  std::string queue;  // the queue's name; empty when it was named by a URL as written
  std::string body;
};

struct KnownObject {
  std::string body;
  uint64_t firehose_epoch = 0;  // Harness::firehose_epoch_ when it was written
};

// A stream named by a field: by its name or by an ARN.
struct StreamRef {
  std::string name;
  std::string arn;
};

class Harness {
 public:
  Harness(riffle::ManualClock& clock, std::unique_ptr<riffle::Account> account,
          std::filesystem::path scratch)
      : clock_(clock), account_(std::move(account)), scratch_(std::move(scratch)) {}

  ~Harness() {
    // Every buffered delivery is written when the account goes.
    SettleDeliveries(/*closing=*/true);
    account_.reset();
    // Subscriptions may outlive the account; they then end.
    for (auto& s : subscriptions_) (void)s->Poll();
    subscriptions_.clear();
  }

  void Run(std::string_view line) {
    using Call = void (Harness::*)(const Fields&);
    static constexpr std::pair<char, Call> kCalls[] = {
        // Kinesis.
        {'C', &Harness::CreateStream},
        {'D', &Harness::DeleteStream},
        {'I', &Harness::DescribeStream},
        {'J', &Harness::DescribeStreamSummary},
        {'L', &Harness::ListStreams},
        {'?', &Harness::DescribeLimits},
        {'Q', &Harness::ListShards},
        {'O', &Harness::UpdateStreamMode},
        {'R', &Harness::Retention},
        {'N', &Harness::SplitShard},
        {'M', &Harness::MergeShards},
        {'U', &Harness::UpdateShardCount},
        {'P', &Harness::PutRecord},
        {'B', &Harness::PutRecords},
        {'T', &Harness::GetShardIterator},
        {'G', &Harness::GetRecords},
        {'E', &Harness::RegisterConsumer},
        {'F', &Harness::DeregisterConsumer},
        {'H', &Harness::DescribeConsumer},
        {'K', &Harness::ListConsumers},
        {'S', &Harness::Subscribe},
        {'V', &Harness::PollSubscriptions},
        {'A', &Harness::AddTags},
        {'X', &Harness::RemoveTags},
        {'Y', &Harness::ListTags},
        {'W', &Harness::Encryption},
        {'Z', &Harness::Monitoring},
        // Firehose.
        {'i', &Harness::CreateDeliveryStream},
        {'w', &Harness::UpdateDestination},
        {'p', &Harness::FirehosePut},
        {'r', &Harness::FirehosePutBatch},
        {'s', &Harness::DescribeDeliveryStream},
        {'l', &Harness::ListDeliveryStreams},
        {'x', &Harness::DeleteDeliveryStream},
        {'y', &Harness::FirehoseTags},
        {'z', &Harness::FirehosePoll},
        // S3.
        {'1', &Harness::CreateBucket},
        {'2', &Harness::PutObject},
        {'3', &Harness::GetObject},
        {'4', &Harness::HeadObject},
        {'5', &Harness::ListObjects},
        {'6', &Harness::DeleteObject},
        {'7', &Harness::ListBuckets},
        // SQS.
        {'c', &Harness::CreateQueue},
        {'n', &Harness::GetQueueUrl},
        {'j', &Harness::ListQueues},
        {'k', &Harness::DeleteQueue},
        {'o', &Harness::PurgeQueue},
        {'g', &Harness::GetQueueAttributes},
        {'h', &Harness::SetQueueAttributes},
        {'t', &Harness::TagQueue},
        {'u', &Harness::UntagQueue},
        {'v', &Harness::ListQueueTags},
        {'m', &Harness::SendMessage},
        {'b', &Harness::SendMessageBatch},
        {'q', &Harness::ReceiveMessage},
        {'d', &Harness::DeleteMessage},
        {'e', &Harness::DeleteMessageBatch},
        {'a', &Harness::ChangeVisibility},
        {'f', &Harness::ChangeVisibilityBatch},
        // The clock and the fault plan.
        {'+', &Harness::Advance},
        {'!', &Harness::AddFault},
        {'~', &Harness::RemoveFaults},
    };
    const Fields f = Split(line, '|');
    if (f[0].size() != 1) return;
    const char op = f[0][0];
    const auto call = std::find_if(std::begin(kCalls), std::end(kCalls),
                                   [op](const auto& c) { return c.first == op; });
    if (call == std::end(kCalls)) return;
    const bool firehose_call = std::string_view("iwprslxyz").find(op) != std::string_view::npos;
    if (firehose_call) SettleDeliveries(/*closing=*/deleting_delivery_streams_ || op == 'x');
    (this->*call->second)(f);
    if (firehose_call) ++firehose_epoch_;
  }

 private:
  riffle::Kinesis& kinesis() { return account_->kinesis(); }
  riffle::Firehose& firehose() { return account_->firehose(); }
  riffle::S3& s3() { return account_->s3(); }
  riffle::Sqs& sqs() { return account_->sqs(); }

  // ---- Checks shared by every call ----

  void Check(const absl::Status& s, std::string_view call) {
    if (s.ok()) return;
    FUZZ_CHECK(riffle_fuzz::IsRiffleErrorName(riffle::ErrorName(s)),
               fmt::format("{}: unknown error name: {}", call, Printable(Describe(s))));
    FUZZ_CHECK(!riffle::ErrorMessage(s).empty(),
               fmt::format("{}: {} without a message", call, riffle::ErrorName(s)));
  }

  void CheckRecords(std::span<const riffle::Record> records, std::string_view call) {
    const riffle::SequenceNumber* previous = nullptr;
    for (const riffle::Record& r : records) {
      const auto it = put_.find(r.sequence_number);
      FUZZ_CHECK(it != put_.end(),
                 fmt::format("{}: record {} was never put", call, r.sequence_number.ToString()));
      FUZZ_CHECK(
          it->second.key == r.partition_key && it->second.data == r.data,
          fmt::format("{}: record {} differs from what was put: key '{}' data '{}'", call,
                      r.sequence_number.ToString(), Printable(r.partition_key), Printable(r.data)));
      FUZZ_CHECK(previous == nullptr || *previous < r.sequence_number,
                 fmt::format("{}: sequence numbers do not increase at {}", call,
                             r.sequence_number.ToString()));
      previous = &r.sequence_number;
    }
  }

  // ---- References ----

  StreamRef StreamField(std::string_view field) {
    if (field.starts_with('@')) return {"", account_->StreamArn(field.substr(1))};
    if (field.starts_with('=')) return {"", std::string(field.substr(1))};
    return {std::string(field), ""};
  }

  std::string Arn(std::string_view field) {
    if (field.starts_with('=')) return std::string(field.substr(1));
    return account_->StreamArn(field);
  }

  std::string Number(std::string_view field) {
    if (auto r = Remembered(field, numbers_)) return r->value;
    return Bytes(field);
  }

  std::string Consumer(std::string_view field) {
    if (auto r = Remembered(field, consumers_)) return r->value;
    return std::string(field);
  }

  Reference Token(std::string_view field) {
    if (auto r = Remembered(field, tokens_)) return *r;
    return {std::string(field), false};
  }

  std::optional<absl::Time> Time(std::string_view field) {
    if (field.empty()) return std::nullopt;
    return clock_.Now() + absl::Seconds(std::clamp<int64_t>(Int(field), -400'000'000, 400'000'000));
  }

  std::optional<int> OptionalInt(std::string_view field) {
    if (field.empty()) return std::nullopt;
    return Clamp(Int(field, -1), -100, 20000);
  }

  std::string HashKeyField(std::string_view stream, std::string_view shard,
                           std::string_view field) {
    if (field == "%") {
      riffle::Stream* s = kinesis().FindStream(stream);
      if (s == nullptr) return "0";
      const absl::StatusOr<std::vector<riffle::Shard>> shards = s->ListShards();
      if (!shards.ok()) return "0";
      const std::string id = ShardId(shard);
      for (const riffle::Shard& sh : *shards) {
        if (sh.shard_id != id) continue;
        const riffle::HashKeyRange& r = sh.hash_key_range;
        return riffle::FormatHashKey(r.starting_hash_key +
                                     (r.ending_hash_key - r.starting_hash_key) / 2);
      }
      return "0";
    }
    if (field.starts_with('%')) {
      const size_t slash = field.find('/');
      const int64_t num = Int(field.substr(1, slash == std::string_view::npos ? 0 : slash - 1));
      const int64_t den = slash == std::string_view::npos ? 1 : Int(field.substr(slash + 1), 1);
      if (den <= 0 || num < 0) return "0";
      return riffle::FormatHashKey(riffle::kMaxHashKey / static_cast<uint64_t>(den) *
                                   static_cast<uint64_t>(num));
    }
    return Bytes(field);
  }

  std::optional<riffle::ShardIteratorType> IteratorType(std::string_view field) {
    switch (field.empty() ? 'h' : field[0]) {
      case 'h':
        return riffle::ShardIteratorType::kTrimHorizon;
      case 'l':
        return riffle::ShardIteratorType::kLatest;
      case 'a':
        return riffle::ShardIteratorType::kAtSequenceNumber;
      case 'f':
        return riffle::ShardIteratorType::kAfterSequenceNumber;
      case 't':
        return riffle::ShardIteratorType::kAtTimestamp;
      default:
        return std::nullopt;
    }
  }

  // ---- Kinesis ----

  void CreateStream(const Fields& f) {
    std::vector<riffle::Tag> tags;
    for (size_t i = 4; i < f.size() && tags.size() < 55; ++i) {
      const auto [k, v] = KeyValue(f[i]);
      tags.push_back({std::string(k), std::string(v)});
    }
    riffle::CreateStreamInput in;
    in.stream_name = Field(f, 1);
    if (!Field(f, 2).empty()) in.shard_count = Clamp(Int(Field(f, 2), -1), -1, kMaxShards);
    if (Field(f, 3) == "O") {
      in.stream_mode_details = riffle::StreamModeDetails{riffle::StreamMode::kOnDemand};
    }
    if (Field(f, 3) == "P") {
      in.stream_mode_details = riffle::StreamModeDetails{riffle::StreamMode::kProvisioned};
    }
    in.tags = tags;
    Check(kinesis().CreateStream(in), "CreateStream");
  }

  void DeleteStream(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    riffle::DeleteStreamInput in{.stream_name = s.name, .stream_arn = s.arn};
    if (Field(f, 2) == "1") in.enforce_consumer_deletion = true;
    if (Field(f, 2) == "0") in.enforce_consumer_deletion = false;
    Check(kinesis().DeleteStream(in), "DeleteStream");
  }

  void DescribeStream(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    const std::string start = Field(f, 3).empty() ? "" : ShardId(Field(f, 3));
    riffle::DescribeStreamInput in{.stream_name = s.name,
                                   .stream_arn = s.arn,
                                   .limit = OptionalInt(Field(f, 2)),
                                   .exclusive_start_shard_id = start};
    const absl::StatusOr<riffle::DescribeStreamOutput> r = kinesis().DescribeStream(in);
    Check(r.status(), "DescribeStream");
    if (!r.ok()) return;
    const riffle::StreamDescription& d = r->stream_description;
    FUZZ_CHECK(d.shards.size() <= static_cast<size_t>(std::min(in.limit.value_or(100), 100)),
               fmt::format("DescribeStream: {} shards", d.shards.size()));
    FUZZ_CHECK(Sorted(d.shards, [](const riffle::Shard& s) { return s.shard_id; }),
               "DescribeStream: shards not by shard id");
    created_[d.stream_name] = d.stream_creation_timestamp;
  }

  void DescribeStreamSummary(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    const auto r = kinesis().DescribeStreamSummary({.stream_name = s.name, .stream_arn = s.arn});
    Check(r.status(), "DescribeStreamSummary");
    if (r.ok()) {
      created_[r->stream_description_summary.stream_name] =
          r->stream_description_summary.stream_creation_timestamp;
    }
  }

  void ListStreams(const Fields& f) {
    const Reference token = Token(Field(f, 3));
    riffle::ListStreamsInput in{.limit = OptionalInt(Field(f, 1)),
                                .exclusive_start_stream_name = Field(f, 2),
                                .next_token = token.value};
    const absl::StatusOr<riffle::ListStreamsOutput> r = kinesis().ListStreams(in);
    Check(r.status(), "ListStreams");
    FUZZ_CHECK(!token.altered || !r.ok(), "ListStreams accepted an altered NextToken");
    if (!r.ok()) return;
    FUZZ_CHECK(r->stream_names.size() <= static_cast<size_t>(std::min(in.limit.value_or(100), 100)),
               "ListStreams: more names than the limit");
    FUZZ_CHECK(Sorted(r->stream_names, [](const std::string& s) { return s; }),
               "ListStreams: names not in order");
    for (const riffle::StreamSummary& s : r->stream_summaries) {
      created_[s.stream_name] = s.stream_creation_timestamp;
    }
    Remember(tokens_, r->next_token);
  }

  void DescribeLimits(const Fields&) {
    Check(kinesis().DescribeLimits().status(), "DescribeLimits");
  }

  void ListShards(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    const Reference token = Token(Field(f, 2));
    const std::string start = Field(f, 3).empty() ? "" : ShardId(Field(f, 3));
    const std::string filter_shard = Field(f, 6).empty() ? "" : ShardId(Field(f, 6));
    riffle::ListShardsInput in{.stream_name = s.name,
                               .stream_arn = s.arn,
                               .next_token = token.value,
                               .exclusive_start_shard_id = start,
                               .max_results = OptionalInt(Field(f, 4))};
    if (!Field(f, 5).empty()) {
      riffle::ShardFilter filter;
      switch (Field(f, 5)[0]) {
        case 'a':
          filter.type = riffle::ShardFilterType::kAfterShardId;
          break;
        case 'h':
          filter.type = riffle::ShardFilterType::kAtTrimHorizon;
          break;
        case 'l':
          filter.type = riffle::ShardFilterType::kAtLatest;
          break;
        case 't':
          filter.type = riffle::ShardFilterType::kAtTimestamp;
          break;
        case 'T':
          filter.type = riffle::ShardFilterType::kFromTimestamp;
          break;
        default:
          filter.type = riffle::ShardFilterType::kFromTrimHorizon;
          break;
      }
      filter.shard_id = filter_shard;
      filter.timestamp = Time(Field(f, 7));
      in.shard_filter = filter;
    }
    if (Field(f, 8) == "c") {
      const auto it = created_.find(s.name);
      if (it != created_.end()) in.stream_creation_timestamp = it->second;
    } else {
      in.stream_creation_timestamp = Time(Field(f, 8));
    }
    const absl::StatusOr<riffle::ListShardsOutput> r = kinesis().ListShards(in);
    Check(r.status(), "ListShards");
    FUZZ_CHECK(!token.altered || !r.ok(), "ListShards accepted an altered NextToken");
    if (!r.ok()) return;
    FUZZ_CHECK(Sorted(r->shards, [](const riffle::Shard& sh) { return sh.shard_id; }),
               "ListShards: shards not by shard id");
    Remember(tokens_, r->next_token);
  }

  void UpdateStreamMode(const Fields& f) {
    const std::string arn = Arn(Field(f, 1));
    riffle::UpdateStreamModeInput in{.stream_arn = arn};
    in.stream_mode_details.stream_mode =
        Field(f, 2) == "O" ? riffle::StreamMode::kOnDemand : riffle::StreamMode::kProvisioned;
    Check(kinesis().UpdateStreamMode(in), "UpdateStreamMode");
  }

  void Retention(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    const int hours = Clamp(Int(Field(f, 3)), -10, 100000);
    if (Field(f, 2) == "-") {
      Check(kinesis().DecreaseStreamRetentionPeriod(
                {.stream_name = s.name, .stream_arn = s.arn, .retention_period_hours = hours}),
            "DecreaseStreamRetentionPeriod");
    } else {
      Check(kinesis().IncreaseStreamRetentionPeriod(
                {.stream_name = s.name, .stream_arn = s.arn, .retention_period_hours = hours}),
            "IncreaseStreamRetentionPeriod");
    }
  }

  void SplitShard(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    const std::string shard = ShardId(Field(f, 2));
    const std::string key = HashKeyField(s.name, Field(f, 2), Field(f, 3));
    Check(kinesis().SplitShard({.stream_name = s.name,
                                .stream_arn = s.arn,
                                .shard_to_split = shard,
                                .new_starting_hash_key = key}),
          "SplitShard");
  }

  void MergeShards(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    const std::string a = ShardId(Field(f, 2));
    const std::string b = ShardId(Field(f, 3));
    Check(kinesis().MergeShards({.stream_name = s.name,
                                 .stream_arn = s.arn,
                                 .shard_to_merge = a,
                                 .adjacent_shard_to_merge = b}),
          "MergeShards");
  }

  void UpdateShardCount(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    Check(kinesis()
              .UpdateShardCount({.stream_name = s.name,
                                 .stream_arn = s.arn,
                                 .target_shard_count = Clamp(Int(Field(f, 2)), -1, kMaxShards)})
              .status(),
          "UpdateShardCount");
  }

  // Remembers a record that was put, under its sequence number.
  void Accepted(const riffle::SequenceNumber& n, std::string_view key, std::string_view data,
                bool explicit_hash_key) {
    put_[n] = {std::string(key), std::string(data), explicit_hash_key};
    Remember(numbers_, n.ToString());
  }

  void PutRecord(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    const std::string key = Bytes(Field(f, 2));
    const std::string data = Bytes(Field(f, 3));
    const std::string ehk = HashKeyField(s.name, "", Field(f, 4));
    const std::optional<Reference> ordering_ref = Remembered(Field(f, 5), numbers_);
    const std::string ordering = ordering_ref ? ordering_ref->value : Bytes(Field(f, 5));
    const absl::StatusOr<riffle::PutRecordOutput> r =
        kinesis().PutRecord({.stream_name = s.name,
                             .stream_arn = s.arn,
                             .partition_key = key,
                             .data = data,
                             .explicit_hash_key = ehk,
                             .sequence_number_for_ordering = ordering});
    Check(r.status(), "PutRecord");
    if (!r.ok()) return;
    FUZZ_CHECK(!r->shard_id.empty(), "PutRecord: no shard id");
    // As Stream's PutRecordRequest documents: the number given for ordering is the previous
    // record's number for this key, and the new one is larger.
    if (ordering_ref && !ordering_ref->altered && ehk.empty()) {
      const absl::StatusOr<riffle::SequenceNumber> previous =
          riffle::SequenceNumber::Parse(ordering);
      const auto it = previous.ok() ? put_.find(*previous) : put_.end();
      if (it != put_.end() && it->second.key == key && !it->second.explicit_hash_key &&
          previous->stream_tag == r->sequence_number.stream_tag) {
        FUZZ_CHECK(*previous < r->sequence_number,
                   fmt::format("PutRecord: {} is not after SequenceNumberForOrdering {}",
                               r->sequence_number.ToString(), ordering));
      }
    }
    Accepted(r->sequence_number, key, data, !ehk.empty());
  }

  void PutRecords(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    std::deque<std::string> storage;  // keeps the entries' bytes in place
    std::vector<riffle::PutRecordsRequestEntry> entries;
    for (size_t i = 2; i < f.size() && entries.size() < kMaxEntries; i += 3) {
      const std::string& key = storage.emplace_back(Bytes(f[i]));
      const std::string& data = storage.emplace_back(Bytes(Field(f, i + 1)));
      const std::string& ehk = storage.emplace_back(HashKeyField(s.name, "", Field(f, i + 2)));
      entries.push_back({key, data, ehk});
    }
    const riffle::PutRecordsInput in{
        .stream_name = s.name, .stream_arn = s.arn, .records = entries};
    riffle::PutRecordsOutput out;
    absl::Status st;
    if (entries.size() % 2 == 0) {
      st = kinesis().PutRecords(in, out);
    } else {
      absl::StatusOr<riffle::PutRecordsOutput> r = kinesis().PutRecords(in);
      st = r.status();
      if (r.ok()) out = *std::move(r);
    }
    Check(st, "PutRecords");
    if (!st.ok()) return;
    FUZZ_CHECK(
        out.records.size() == entries.size(),
        fmt::format("PutRecords: {} results for {} entries", out.records.size(), entries.size()));
    int failed = 0;
    for (size_t i = 0; i < entries.size(); ++i) {
      const riffle::PutRecordsResultEntry& e = out.records[i];
      if (!e.error_code.empty()) {
        ++failed;
        FUZZ_CHECK(e.error_code == riffle::kProvisionedThroughputExceededException ||
                       e.error_code == riffle::kInternalFailure,
                   fmt::format("PutRecords: entry error code {}", Printable(e.error_code)));
        FUZZ_CHECK(!e.sequence_number.has_value(), "PutRecords: a failed entry has a number");
        continue;
      }
      FUZZ_CHECK(e.sequence_number.has_value() && !e.shard_id.empty(),
                 "PutRecords: an accepted entry without shard id or number");
      Accepted(*e.sequence_number, entries[i].partition_key, entries[i].data,
               !entries[i].explicit_hash_key.empty());
    }
    FUZZ_CHECK(out.failed_record_count == failed,
               fmt::format("PutRecords: FailedRecordCount {} for {} failed entries",
                           out.failed_record_count, failed));
  }

  void GetShardIterator(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    const std::optional<riffle::ShardIteratorType> type = IteratorType(Field(f, 3));
    if (!type) return;
    const std::string shard = ShardId(Field(f, 2));
    const std::string number = Number(Field(f, 4));
    const absl::StatusOr<riffle::GetShardIteratorOutput> r =
        kinesis().GetShardIterator({.stream_name = s.name,
                                    .stream_arn = s.arn,
                                    .shard_id = shard,
                                    .shard_iterator_type = *type,
                                    .starting_sequence_number = number,
                                    .timestamp = Time(Field(f, 5))});
    Check(r.status(), "GetShardIterator");
    if (r.ok()) Remember(iterators_, r->shard_iterator);
  }

  void GetRecords(const Fields& f) {
    const std::optional<Reference> ref = Remembered(Field(f, 1), iterators_);
    std::string iterator = ref ? ref->value : std::string(Field(f, 1));
    const std::string arn = Field(f, 3).empty() ? "" : Arn(Field(f, 3));
    const std::optional<int> limit = OptionalInt(Field(f, 2));
    const int reads = Clamp(Int(Field(f, 4), 1), 1, 4);
    for (int i = 0; i < reads && !iterator.empty(); ++i) {
      const riffle::GetRecordsInput in{
          .shard_iterator = iterator, .limit = limit, .stream_arn = arn};
      absl::Status st;
      if (i % 2 == 0) {
        st = kinesis().GetRecords(in, records_);
      } else {
        absl::StatusOr<riffle::GetRecordsOutput> r = kinesis().GetRecords(in);
        st = r.status();
        if (r.ok()) records_ = *std::move(r);
      }
      Check(st, "GetRecords");
      FUZZ_CHECK(i > 0 || !ref || !ref->altered || !st.ok(),
                 fmt::format("GetRecords accepted an altered iterator '{}'", Printable(iterator)));
      if (!st.ok()) return;
      CheckRecords(records_.result.records, "GetRecords");
      iterator = records_.next_shard_iterator;
      Remember(iterators_, iterator);
    }
  }

  void RegisterConsumer(const Fields& f) {
    const std::string arn = Arn(Field(f, 1));
    riffle::RegisterStreamConsumerInput in{.stream_arn = arn, .consumer_name = Field(f, 2)};
    in.options.lossless = Field(f, 3) == "1";
    const auto r = kinesis().RegisterStreamConsumer(in);
    Check(r.status(), "RegisterStreamConsumer");
    if (r.ok()) Remember(consumers_, r->consumer.consumer_arn);
  }

  void DeregisterConsumer(const Fields& f) {
    const std::string arn = Field(f, 1).empty() ? "" : Arn(Field(f, 1));
    const std::string consumer = Consumer(Field(f, 3));
    Check(kinesis().DeregisterStreamConsumer(
              {.stream_arn = arn, .consumer_name = Field(f, 2), .consumer_arn = consumer}),
          "DeregisterStreamConsumer");
  }

  void DescribeConsumer(const Fields& f) {
    const std::string arn = Field(f, 1).empty() ? "" : Arn(Field(f, 1));
    const std::string consumer = Consumer(Field(f, 3));
    Check(kinesis()
              .DescribeStreamConsumer(
                  {.stream_arn = arn, .consumer_name = Field(f, 2), .consumer_arn = consumer})
              .status(),
          "DescribeStreamConsumer");
  }

  void ListConsumers(const Fields& f) {
    const std::string arn = Field(f, 1).empty() ? "" : Arn(Field(f, 1));
    const Reference token = Token(Field(f, 2));
    riffle::ListStreamConsumersInput in{
        .stream_arn = arn, .next_token = token.value, .max_results = OptionalInt(Field(f, 3))};
    if (Field(f, 4) == "c") {
      const size_t slash = arn.rfind('/');
      const auto it = created_.find(slash == std::string::npos ? "" : arn.substr(slash + 1));
      if (it != created_.end()) in.stream_creation_timestamp = it->second;
    } else {
      in.stream_creation_timestamp = Time(Field(f, 4));
    }
    const auto r = kinesis().ListStreamConsumers(in);
    Check(r.status(), "ListStreamConsumers");
    FUZZ_CHECK(!token.altered || !r.ok(), "ListStreamConsumers accepted an altered NextToken");
    if (r.ok()) Remember(tokens_, r->next_token);
  }

  void Subscribe(const Fields& f) {
    const std::optional<riffle::ShardIteratorType> type = IteratorType(Field(f, 3));
    if (!type) return;
    const std::string consumer = Consumer(Field(f, 1));
    const std::string shard = ShardId(Field(f, 2));
    riffle::StartingPosition position{
        .type = *type, .sequence_number = Number(Field(f, 4)), .timestamp = Time(Field(f, 5))};
    riffle::SubscriptionOptions options;
    options.max_records_per_event = 50;
    auto r = kinesis().SubscribeToShard(
        {.consumer_arn = consumer, .shard_id = shard, .starting_position = position},
        [this](const riffle::SubscribeToShardEvent& e) { CheckRecords(e.records, "Subscription"); },
        options);
    Check(r.status(), "SubscribeToShard");
    if (!r.ok()) return;
    if (subscriptions_.size() == kMaxSubscriptions) subscriptions_.erase(subscriptions_.begin());
    subscriptions_.push_back(*std::move(r));
  }

  void PollSubscriptions(const Fields& f) {
    if (subscriptions_.empty()) return;
    const int polls = Clamp(Int(Field(f, 2), 1), 1, 8);
    for (size_t i = 0; i < subscriptions_.size(); ++i) {
      if (Field(f, 1) != "*" &&
          i != static_cast<size_t>(Clamp(Int(Field(f, 1)), 0, 1000)) % subscriptions_.size()) {
        continue;
      }
      for (int p = 0; p < polls; ++p) (void)subscriptions_[i]->Poll();
    }
  }

  void AddTags(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    std::vector<riffle::Tag> tags;
    for (size_t i = 2; i < f.size() && tags.size() < 55; ++i) {
      const auto [k, v] = KeyValue(f[i]);
      tags.push_back({std::string(k), std::string(v)});
    }
    Check(kinesis().AddTagsToStream({.stream_name = s.name, .stream_arn = s.arn, .tags = tags}),
          "AddTagsToStream");
  }

  void RemoveTags(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    const std::vector<std::string_view> keys(f.begin() + std::min<size_t>(2, f.size()), f.end());
    Check(kinesis().RemoveTagsFromStream(
              {.stream_name = s.name, .stream_arn = s.arn, .tag_keys = keys}),
          "RemoveTagsFromStream");
  }

  void ListTags(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    const auto r = kinesis().ListTagsForStream({.stream_name = s.name,
                                                .stream_arn = s.arn,
                                                .exclusive_start_tag_key = Field(f, 2),
                                                .limit = OptionalInt(Field(f, 3))});
    Check(r.status(), "ListTagsForStream");
    if (r.ok()) {
      FUZZ_CHECK(Sorted(r->tags, [](const riffle::Tag& t) { return t.key; }),
                 "ListTagsForStream: tags not by key");
    }
  }

  void Encryption(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    const riffle::EncryptionType type =
        Field(f, 3) == "N" ? riffle::EncryptionType::kNone : riffle::EncryptionType::kKms;
    const std::string key = Bytes(Field(f, 4));
    if (Field(f, 2) == "-") {
      Check(
          kinesis().StopStreamEncryption(
              {.stream_name = s.name, .stream_arn = s.arn, .encryption_type = type, .key_id = key}),
          "StopStreamEncryption");
    } else {
      Check(
          kinesis().StartStreamEncryption(
              {.stream_name = s.name, .stream_arn = s.arn, .encryption_type = type, .key_id = key}),
          "StartStreamEncryption");
    }
  }

  void Monitoring(const Fields& f) {
    const StreamRef s = StreamField(Field(f, 1));
    std::vector<riffle::ShardLevelMetric> metrics;
    for (char c : Field(f, 3)) {
      if (c >= '0' && c <= '7' && metrics.size() < 9) {
        metrics.push_back(static_cast<riffle::ShardLevelMetric>(c - '0'));
      }
    }
    const riffle::EnableEnhancedMonitoringInput in{
        .stream_name = s.name, .stream_arn = s.arn, .shard_level_metrics = metrics};
    if (Field(f, 2) == "-") {
      Check(kinesis().DisableEnhancedMonitoring(in).status(), "DisableEnhancedMonitoring");
    } else {
      Check(kinesis().EnableEnhancedMonitoring(in).status(), "EnableEnhancedMonitoring");
    }
  }

  // ---- Firehose ----

  std::string BucketArn(std::string_view field) {
    if (field.starts_with('=')) return std::string(field.substr(1));
    return riffle::S3::BucketArn(field);
  }

  // A bucket a delivery stream may write to from now on (its objects are no longer known
  // after a Firehose call). An ARN as written may name any bucket.
  void MayDeliverInto(std::string_view field) {
    if (field.starts_with('=')) {
      delivery_to_any_bucket_ = true;
    } else {
      delivery_buckets_.insert(std::string(field));
    }
  }

  static std::string_view Compression(std::string_view field) {
    if (field == "u") return "UNCOMPRESSED";
    if (field == "g") return "GZIP";
    if (field == "z") return "ZIP";
    if (field == "s") return "Snappy";
    if (field == "h") return "HADOOP_SNAPPY";
    return field;
  }

  static std::optional<riffle::BufferingHints> Hints(std::string_view size,
                                                     std::string_view interval) {
    if ((size.empty() || size == "-") && (interval.empty() || interval == "-")) return std::nullopt;
    riffle::BufferingHints h;
    if (!size.empty() && size != "-") h.size_in_mbs = Clamp(Int(size), -1, 200);
    if (!interval.empty() && interval != "-") {
      h.interval_in_seconds = Clamp(Int(interval), -1, 1000);
    }
    return h;
  }

  static riffle::ProcessingConfiguration Processing(std::string_view flags) {
    riffle::ProcessingConfiguration p;
    p.enabled = flags.find_first_of("pP") != std::string_view::npos;
    if (flags.find('p') != std::string_view::npos) p.processor = Process;
    p.append_delimiter_to_record = flags.find('n') != std::string_view::npos;
    if (flags.find('r') != std::string_view::npos) p.number_of_retries = 0;
    if (flags.find('R') != std::string_view::npos) p.number_of_retries = 301;
    if (flags.find('l') != std::string_view::npos) {
      p.lambda_arn = "arn:aws:lambda:us-east-1:000000000000:function:fuzz";
    }
    return p;
  }

  void CreateDeliveryStream(const Fields& f) {
    if (MayNameDirectoryBucket(Field(f, 2))) return;
    const std::string_view name = Field(f, 1);
    const std::string bucket_arn = BucketArn(Field(f, 2));
    const std::string_view flags = Field(f, 8);
    const std::string stream_arn = Field(f, 9).empty() ? "" : Arn(Field(f, 9));
    std::vector<riffle::Tag> tags;
    for (size_t i = 10; i < f.size() && tags.size() < 55; ++i) {
      const auto [k, v] = KeyValue(f[i]);
      tags.push_back({std::string(k), std::string(v)});
    }
    riffle::ExtendedS3DestinationConfiguration destination;
    destination.bucket_arn = bucket_arn;
    destination.prefix = Field(f, 3);
    destination.error_output_prefix = Field(f, 4);
    destination.buffering_hints = Hints(Field(f, 5), Field(f, 6));
    if (!Field(f, 7).empty()) destination.compression_format = Compression(Field(f, 7));
    destination.processing_configuration = Processing(flags);
    destination.dynamic_partitioning_configuration.enabled =
        flags.find_first_of("dD") != std::string_view::npos;
    if (flags.find('d') != std::string_view::npos) {
      destination.dynamic_partitioning_configuration.partition_key_function = PartitionKey;
    }
    riffle::DeliveryStreamOptions options;
    options.random_seed = 7;
    if (flags.find('e') != std::string_view::npos) options.retry_options.duration_in_seconds = 10;
    if (flags.find('b') != std::string_view::npos) options.max_buffered_bytes = 4096;
    riffle::CreateDeliveryStreamInput in{.delivery_stream_name = name, .tags = tags};
    in.delivery_stream_options = &options;
    if (!stream_arn.empty()) {
      in.delivery_stream_type = riffle::DeliveryStreamType::kKinesisStreamAsSource;
      in.kinesis_stream_source_configuration =
          riffle::KinesisStreamSourceConfiguration{.kinesis_stream_arn = stream_arn};
    }
    if (flags.find('o') == std::string_view::npos) {
      in.extended_s3_destination_configuration = destination;
    }
    MayDeliverInto(Field(f, 2));
    Check(firehose().CreateDeliveryStream(in).status(), "CreateDeliveryStream");
  }

  void UpdateDestination(const Fields& f) {
    const std::string_view name = Field(f, 1);
    std::string version(Field(f, 2));
    if (version == "#") {
      const auto d = firehose().DescribeDeliveryStream({.delivery_stream_name = name});
      Check(d.status(), "DescribeDeliveryStream");
      version = d.ok() ? d->delivery_stream_description.version_id : "1";
    }
    const std::string_view id = Field(f, 3) == "#" ? kDestinationId : Field(f, 3);
    auto given = [&](size_t i) -> std::optional<std::string_view> {
      if (i >= f.size() || f[i] == "-") return std::nullopt;
      return f[i];
    };
    riffle::ExtendedS3DestinationUpdate update;
    update.prefix = given(4);
    update.error_output_prefix = given(5);
    update.buffering_hints = Hints(Field(f, 6), Field(f, 7));
    if (given(8)) update.compression_format = Compression(*given(8));
    std::string bucket_arn;
    if (given(9) && MayNameDirectoryBucket(*given(9))) return;
    if (given(9)) {
      bucket_arn = BucketArn(*given(9));
      update.bucket_arn = bucket_arn;
      MayDeliverInto(*given(9));
    }
    const std::string_view flags = Field(f, 10);
    if (flags.find_first_of("pP0") != std::string_view::npos) {
      update.processing_configuration = Processing(flags);
    }
    if (flags.find_first_of("dD") != std::string_view::npos) {
      update.dynamic_partitioning_configuration = riffle::DynamicPartitioningConfiguration{
          .enabled = flags.find('d') != std::string_view::npos};
    }
    Check(firehose()
              .UpdateDestination({.delivery_stream_name = name,
                                  .current_delivery_stream_version_id = version,
                                  .destination_id = id,
                                  .extended_s3_destination_update = update})
              .status(),
          "UpdateDestination");
  }

  void FirehosePut(const Fields& f) {
    const std::string data = Bytes(Field(f, 2));
    Check(firehose()
              .PutRecord({.delivery_stream_name = Field(f, 1), .record = {.data = data}})
              .status(),
          "Firehose PutRecord");
  }

  void FirehosePutBatch(const Fields& f) {
    std::deque<std::string> storage;
    std::vector<riffle::FirehoseRecord> records;
    for (size_t i = 2; i < f.size() && records.size() < kMaxEntries; ++i) {
      records.push_back({storage.emplace_back(Bytes(f[i]))});
    }
    const auto r =
        firehose().PutRecordBatch({.delivery_stream_name = Field(f, 1), .records = records});
    Check(r.status(), "PutRecordBatch");
    if (!r.ok()) return;
    FUZZ_CHECK(r->request_responses.size() == records.size(),
               fmt::format("PutRecordBatch: {} responses for {} records",
                           r->request_responses.size(), records.size()));
    int failed = 0;
    for (const riffle::PutRecordBatchResponseEntryOutput& e : r->request_responses) {
      if (e.error_code.empty()) {
        FUZZ_CHECK(!e.record_id.empty(), "PutRecordBatch: an accepted record without RecordId");
        continue;
      }
      ++failed;
      FUZZ_CHECK(riffle_fuzz::IsRiffleErrorName(e.error_code) && !e.error_message.empty(),
                 fmt::format("PutRecordBatch: entry error '{}'", Printable(e.error_code)));
    }
    FUZZ_CHECK(r->failed_put_count == failed,
               fmt::format("PutRecordBatch: FailedPutCount {} for {} failed records",
                           r->failed_put_count, failed));
  }

  void DescribeDeliveryStream(const Fields& f) {
    Check(firehose()
              .DescribeDeliveryStream({.delivery_stream_name = Field(f, 1),
                                       .limit = OptionalInt(Field(f, 2)),
                                       .exclusive_start_destination_id = Field(f, 3)})
              .status(),
          "DescribeDeliveryStream");
    if (riffle::DeliveryStream* d = firehose().FindDeliveryStream(Field(f, 1))) {
      (void)d->GetMetrics();
      Check(d->last_error(), "DeliveryStream::last_error");
    }
  }

  void ListDeliveryStreams(const Fields& f) {
    riffle::ListDeliveryStreamsInput in{.limit = OptionalInt(Field(f, 1)),
                                        .exclusive_start_delivery_stream_name = Field(f, 3)};
    if (Field(f, 2) == "d") in.delivery_stream_type = riffle::DeliveryStreamType::kDirectPut;
    if (Field(f, 2) == "k") {
      in.delivery_stream_type = riffle::DeliveryStreamType::kKinesisStreamAsSource;
    }
    const auto r = firehose().ListDeliveryStreams(in);
    Check(r.status(), "ListDeliveryStreams");
    if (r.ok()) {
      FUZZ_CHECK(Sorted(r->delivery_stream_names, [](const std::string& s) { return s; }),
                 "ListDeliveryStreams: names not in order");
    }
  }

  void DeleteDeliveryStream(const Fields& f) {
    riffle::DeleteDeliveryStreamInput in{.delivery_stream_name = Field(f, 1)};
    if (Field(f, 2) == "1") in.allow_force_delete = true;
    if (Field(f, 2) == "0") in.allow_force_delete = false;
    const absl::Status s = firehose().DeleteDeliveryStream(in);
    Check(s, "DeleteDeliveryStream");
    if (s.ok()) deleting_delivery_streams_ = true;
  }

  void FirehoseTags(const Fields& f) {
    const std::string_view name = Field(f, 1);
    if (Field(f, 2) == "+") {
      std::vector<riffle::Tag> tags;
      for (size_t i = 3; i < f.size() && tags.size() < 55; ++i) {
        const auto [k, v] = KeyValue(f[i]);
        tags.push_back({std::string(k), std::string(v)});
      }
      Check(firehose().TagDeliveryStream({.delivery_stream_name = name, .tags = tags}),
            "TagDeliveryStream");
    } else if (Field(f, 2) == "-") {
      const std::vector<std::string_view> keys(f.begin() + std::min<size_t>(3, f.size()), f.end());
      Check(firehose().UntagDeliveryStream({.delivery_stream_name = name, .tag_keys = keys}),
            "UntagDeliveryStream");
    } else {
      const auto r = firehose().ListTagsForDeliveryStream({.delivery_stream_name = name,
                                                           .exclusive_start_tag_key = Field(f, 3),
                                                           .limit = OptionalInt(Field(f, 4))});
      Check(r.status(), "ListTagsForDeliveryStream");
      if (r.ok()) {
        FUZZ_CHECK(Sorted(r->tags, [](const riffle::Tag& t) { return t.key; }),
                   "ListTagsForDeliveryStream: tags not by key");
      }
    }
  }

  void FirehosePoll(const Fields& f) {
    if (f.size() < 2) {
      (void)firehose().Poll();
    } else {
      Check(firehose().Flush(f[1]).status(), "Flush");
    }
  }

  // A delivery stream that goes (DeleteDeliveryStream, or the account's end) delivers what
  // it buffered first, waiting on the clock for a bucket that still fails writes
  // (firehose.h: with a ManualClock, clear such faults first). Before that can happen the
  // fault rules that can fail PutObject are removed.
  void SettleDeliveries(bool closing) {
    if (!closing) return;
    for (int id : write_fault_rules_) (void)account_->faults().Remove(id);
    write_fault_rules_.clear();
  }

  // ---- S3 ----

  void CreateBucket(const Fields& f) {
    std::string directory;
    if (Field(f, 2) == "d") directory = (scratch_ / fmt::format("d{}", directories_++)).string();
    const absl::Status s =
        s3().CreateBucket({.bucket = Field(f, 1), .directory = directory}).status();
    Check(s, "CreateBucket");
    if (s.ok() && !directory.empty()) directory_buckets_.insert(std::string(Field(f, 1)));
  }

  // A delivery stream writing into a directory bucket fails for good on a key that is no
  // file name (a prefix can make one), and a delivery stream that goes waits on the clock
  // for such writes (firehose.h): none is pointed at a directory bucket.
  bool MayNameDirectoryBucket(std::string_view field) const {
    if (field.starts_with('=')) return !directory_buckets_.empty();
    return directory_buckets_.contains(std::string(field));
  }

  // The body PutObject last wrote under (bucket, key), when nothing else may have written it.
  const std::string* Known(const std::string& bucket, const std::string& key) const {
    const auto it = objects_.find({bucket, key});
    if (it == objects_.end()) return nullptr;
    if ((delivery_to_any_bucket_ || delivery_buckets_.contains(bucket)) &&
        it->second.firehose_epoch != firehose_epoch_) {
      return nullptr;
    }
    return &it->second.body;
  }

  void PutObject(const Fields& f) {
    const std::string bucket(Field(f, 1));
    const std::string key = Bytes(Field(f, 2));
    const std::string body = Bytes(Field(f, 3));
    const auto r = s3().PutObject({.bucket = bucket, .key = key, .body = body});
    Check(r.status(), "PutObject");
    if (!r.ok()) return;
    FUZZ_CHECK(r->etag == QuotedMd5(body), fmt::format("PutObject: ETag {}", r->etag));
    objects_[{bucket, key}] = {body, firehose_epoch_};
  }

  void GetObject(const Fields& f) {
    const std::string bucket(Field(f, 1));
    const std::string key = Bytes(Field(f, 2));
    const auto r = s3().GetObject({.bucket = bucket, .key = key});
    Check(r.status(), "GetObject");
    const std::string* known = Known(bucket, key);
    if (known == nullptr) return;
    FUZZ_CHECK(
        r.ok() || account_->faults().active(),
        fmt::format("GetObject of '{}' written before: {}", Printable(key), Describe(r.status())));
    if (!r.ok()) return;
    FUZZ_CHECK(r->body == *known,
               fmt::format("GetObject of '{}': '{}', not the '{}' written", Printable(key),
                           Printable(r->body), Printable(*known)));
    FUZZ_CHECK(
        r->content_length == static_cast<int64_t>(known->size()) && r->etag == QuotedMd5(*known),
        "GetObject: ContentLength or ETag");
  }

  void HeadObject(const Fields& f) {
    const std::string bucket(Field(f, 1));
    const std::string key = Bytes(Field(f, 2));
    const auto r = s3().HeadObject({.bucket = bucket, .key = key});
    Check(r.status(), "HeadObject");
    const std::string* known = Known(bucket, key);
    if (known == nullptr || !r.ok()) return;
    FUZZ_CHECK(
        r->content_length == static_cast<int64_t>(known->size()) && r->etag == QuotedMd5(*known),
        fmt::format("HeadObject of '{}': ContentLength or ETag", Printable(key)));
  }

  void ListObjects(const Fields& f) {
    const std::string bucket(Field(f, 1));
    const Reference token = Token(Field(f, 5));
    const auto r = s3().ListObjectsV2({.bucket = bucket,
                                       .prefix = Field(f, 2),
                                       .delimiter = Field(f, 3),
                                       .max_keys = OptionalInt(Field(f, 4)),
                                       .continuation_token = token.value,
                                       .start_after = Field(f, 6)});
    Check(r.status(), "ListObjectsV2");
    FUZZ_CHECK(!token.altered || !r.ok(), "ListObjectsV2 accepted an altered ContinuationToken");
    if (!r.ok()) return;
    FUZZ_CHECK(Sorted(r->contents, [](const riffle::S3Object& o) { return o.key; }),
               "ListObjectsV2: keys not in order");
    FUZZ_CHECK(Sorted(r->common_prefixes, [](const riffle::CommonPrefix& p) { return p.prefix; }),
               "ListObjectsV2: common prefixes not in order");
    FUZZ_CHECK(r->key_count == static_cast<int>(r->contents.size() + r->common_prefixes.size()),
               "ListObjectsV2: KeyCount");
    FUZZ_CHECK(!r->is_truncated || !r->next_continuation_token.empty(),
               "ListObjectsV2: truncated without NextContinuationToken");
    for (const riffle::S3Object& o : r->contents) {
      const std::string* known = Known(bucket, o.key);
      if (known == nullptr) continue;
      FUZZ_CHECK(o.size == static_cast<int64_t>(known->size()) && o.etag == QuotedMd5(*known),
                 fmt::format("ListObjectsV2: '{}' listed with size {}", Printable(o.key), o.size));
    }
    Remember(tokens_, r->next_continuation_token);
  }

  void ListBuckets(const Fields&) { Check(s3().ListBuckets().status(), "ListBuckets"); }

  void DeleteObject(const Fields& f) {
    const std::string bucket(Field(f, 1));
    const std::string key = Bytes(Field(f, 2));
    const absl::Status s = s3().DeleteObject({.bucket = bucket, .key = key});
    Check(s, "DeleteObject");
    if (s.ok()) objects_.erase({bucket, key});
  }

  // ---- SQS ----

  struct QueueRef {
    std::string url;
    std::string name;  // empty for a URL as written, or a name no queue can have
  };

  QueueRef Queue(std::string_view field) {
    if (field.starts_with('=')) return {std::string(field.substr(1)), ""};
    const bool valid =
        !field.empty() && field.size() <= 80 && std::all_of(field.begin(), field.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || c == '.';
        });
    return {sqs().QueueUrl(field), valid ? std::string(field) : ""};
  }

  std::string Handle(std::string_view field) {
    if (auto r = Remembered(field, handles_)) return r->value;
    return std::string(field);
  }

  static std::vector<std::string> List(std::string_view field) {
    std::vector<std::string> out;
    if (field.empty()) return out;
    for (std::string_view s : Split(field, ',')) out.emplace_back(s);
    return out;
  }

  void NoteRedrive(const riffle::SqsAttributeMap& attributes) {
    const auto it = attributes.find("RedrivePolicy");
    if (it != attributes.end() && !it->second.empty()) redrive_ = true;
  }

  void CreateQueue(const Fields& f) {
    riffle::CreateQueueInput in{.queue_name = Field(f, 1)};
    if (Field(f, 2) == "1") {
      in.attributes["FifoQueue"] = "true";
    } else if (!Field(f, 2).empty() && Field(f, 2) != "0") {
      in.attributes["FifoQueue"] = std::string(Field(f, 2));
    }
    for (size_t i = 3; i < f.size(); ++i) {
      if (f[i].starts_with("tag:")) {
        const auto [k, v] = KeyValue(f[i].substr(4));
        in.tags[std::string(k)] = std::string(v);
      } else {
        const auto [k, v] = KeyValue(f[i]);
        in.attributes[std::string(k)] = std::string(v);
      }
    }
    const auto r = sqs().CreateQueue(in);
    Check(r.status(), "CreateQueue");
    if (r.ok()) NoteRedrive(in.attributes);
  }

  void GetQueueUrl(const Fields& f) {
    Check(sqs()
              .GetQueueUrl({.queue_name = Field(f, 1), .queue_owner_aws_account_id = Field(f, 2)})
              .status(),
          "GetQueueUrl");
  }

  void ListQueues(const Fields& f) {
    const Reference token = Token(Field(f, 3));
    riffle::ListQueuesInput in{.queue_name_prefix = Field(f, 1), .next_token = token.value};
    if (!Field(f, 2).empty()) in.max_results = Clamp(Int(Field(f, 2), -1), -1, 2000);
    const auto r = sqs().ListQueues(in);
    Check(r.status(), "ListQueues");
    FUZZ_CHECK(!token.altered || !r.ok(), "ListQueues accepted an altered NextToken");
    if (!r.ok()) return;
    FUZZ_CHECK(Sorted(r->queue_urls, [](const std::string& s) { return s; }),
               "ListQueues: URLs not in name order");
    Remember(tokens_, r->next_token);
  }

  void DeleteQueue(const Fields& f) {
    Check(sqs().DeleteQueue({.queue_url = Queue(Field(f, 1)).url}), "DeleteQueue");
  }

  void PurgeQueue(const Fields& f) {
    Check(sqs().PurgeQueue({.queue_url = Queue(Field(f, 1)).url}), "PurgeQueue");
  }

  void ListQueueTags(const Fields& f) {
    Check(sqs().ListQueueTags({.queue_url = Queue(Field(f, 1)).url}).status(), "ListQueueTags");
  }

  void GetQueueAttributes(const Fields& f) {
    const QueueRef q = Queue(Field(f, 1));
    riffle::GetQueueAttributesInput in{.queue_url = q.url};
    for (size_t i = 2; i < f.size(); ++i) in.attribute_names.emplace_back(f[i]);
    Check(sqs().GetQueueAttributes(in).status(), "GetQueueAttributes");
  }

  void SetQueueAttributes(const Fields& f) {
    const QueueRef q = Queue(Field(f, 1));
    riffle::SetQueueAttributesInput in{.queue_url = q.url};
    for (size_t i = 2; i < f.size(); ++i) {
      const auto [k, v] = KeyValue(f[i]);
      in.attributes[std::string(k)] = std::string(v);
    }
    const absl::Status s = sqs().SetQueueAttributes(in);
    Check(s, "SetQueueAttributes");
    if (s.ok()) NoteRedrive(in.attributes);
  }

  void TagQueue(const Fields& f) {
    const QueueRef q = Queue(Field(f, 1));
    riffle::TagQueueInput in{.queue_url = q.url};
    for (size_t i = 2; i < f.size(); ++i) {
      const auto [k, v] = KeyValue(f[i]);
      in.tags[std::string(k)] = std::string(v);
    }
    Check(sqs().TagQueue(in), "TagQueue");
  }

  void UntagQueue(const Fields& f) {
    const QueueRef q = Queue(Field(f, 1));
    riffle::UntagQueueInput in{.queue_url = q.url};
    for (size_t i = 2; i < f.size(); ++i) in.tag_keys.emplace_back(f[i]);
    Check(sqs().UntagQueue(in), "UntagQueue");
  }

  void Sent(const std::string& message_id, const QueueRef& q, std::string_view body) {
    sent_.try_emplace(message_id, SentMessage{q.name, std::string(body)});
  }

  void SendMessage(const Fields& f) {
    const QueueRef q = Queue(Field(f, 1));
    const std::string body = Bytes(Field(f, 3));
    riffle::SendMessageInput in{
        .queue_url = q.url, .message_body = body, .message_group_id = Field(f, 2)};
    if (f.size() > 4 && f[4] != "-") in.message_deduplication_id = f[4];
    if (!Field(f, 5).empty()) {
      riffle::MessageAttributeValue v;
      v.data_type = std::string(Field(f, 6));
      (v.data_type.starts_with("Binary") ? v.binary_value : v.string_value) = Bytes(Field(f, 7));
      in.message_attributes[std::string(Field(f, 5))] = v;
    }
    if (!Field(f, 8).empty()) in.delay_seconds = Clamp(Int(Field(f, 8)), -1, 1000);
    if (!Field(f, 9).empty()) {
      in.message_system_attributes["AWSTraceHeader"] = {"String", std::string(Field(f, 9)), ""};
    }
    const auto r = sqs().SendMessage(in);
    Check(r.status(), "SendMessage");
    if (!r.ok()) return;
    FUZZ_CHECK(r->md5_of_message_body == riffle::Md5OfMessageBody(body),
               "SendMessage: MD5OfMessageBody");
    Sent(r->message_id, q, body);
  }

  void SendMessageBatch(const Fields& f) {
    const QueueRef q = Queue(Field(f, 1));
    std::deque<std::string> bodies;
    std::vector<riffle::SendMessageBatchInputEntry> entries;
    for (size_t i = 2; i < f.size() && entries.size() < kMaxSqsEntries; i += 4) {
      riffle::SendMessageBatchInputEntry e{
          .id = f[i],
          .message_body = bodies.emplace_back(Bytes(Field(f, i + 2))),
          .message_group_id = Field(f, i + 1)};
      if (i + 3 < f.size() && f[i + 3] != "-") e.message_deduplication_id = f[i + 3];
      entries.push_back(e);
    }
    const auto r = sqs().SendMessageBatch({.queue_url = q.url, .entries = entries});
    Check(r.status(), "SendMessageBatch");
    if (!r.ok()) return;
    FUZZ_CHECK(r->successful.size() + r->failed.size() == entries.size(),
               "SendMessageBatch: results do not match the entries");
    for (const riffle::SendMessageBatchOutputEntry& ok : r->successful) {
      const auto e = std::find_if(entries.begin(), entries.end(),
                                  [&](const auto& x) { return x.id == ok.id; });
      FUZZ_CHECK(e != entries.end(), fmt::format("SendMessageBatch: unknown id {}", ok.id));
      FUZZ_CHECK(ok.md5_of_message_body == riffle::Md5OfMessageBody(e->message_body),
                 "SendMessageBatch: MD5OfMessageBody");
      Sent(ok.message_id, q, e->message_body);
    }
    CheckFailed(r->failed, "SendMessageBatch");
  }

  void CheckFailed(const std::vector<riffle::BatchResultErrorEntry>& failed,
                   std::string_view call) {
    for (const riffle::BatchResultErrorEntry& e : failed) {
      FUZZ_CHECK(riffle_fuzz::IsRiffleErrorName(e.code) && !e.message.empty(),
                 fmt::format("{}: entry error '{}'", call, Printable(e.code)));
    }
  }

  void ReceiveMessage(const Fields& f) {
    const QueueRef q = Queue(Field(f, 1));
    riffle::ReceiveMessageInput in{.queue_url = q.url};
    in.message_system_attribute_names = List(Field(f, 6));
    in.message_attribute_names = List(Field(f, 7));
    if (!Field(f, 2).empty()) in.max_number_of_messages = Clamp(Int(Field(f, 2), -1), -1, 20);
    if (!Field(f, 3).empty()) in.visibility_timeout = Clamp(Int(Field(f, 3), -1), -1, 50000);
    // A long poll would wait for a clock that only this thread moves: only the values the
    // call refuses are passed on.
    const int wait = Clamp(Int(Field(f, 4)), -1, 30);
    in.wait_time_seconds = wait < 0 || wait > 20 ? wait : 0;
    in.receive_request_attempt_id = Field(f, 5);
    const auto r = sqs().ReceiveMessage(in);
    Check(r.status(), "ReceiveMessage");
    if (!r.ok()) return;
    // A retried ReceiveRequestAttemptId answers with the first receive's messages.
    FUZZ_CHECK(!in.receive_request_attempt_id.empty() ||
                   r->messages.size() <= static_cast<size_t>(in.max_number_of_messages),
               "ReceiveMessage: more messages than asked");
    for (const riffle::SqsMessage& m : r->messages) {
      const auto it = sent_.find(m.message_id);
      FUZZ_CHECK(it != sent_.end(),
                 fmt::format("received message {} was never sent", m.message_id));
      FUZZ_CHECK(m.body == it->second.body,
                 fmt::format("message {}: body '{}', sent '{}'", m.message_id, Printable(m.body),
                             Printable(it->second.body)));
      FUZZ_CHECK(
          redrive_ || q.name.empty() || it->second.queue.empty() || it->second.queue == q.name,
          fmt::format("message {} sent to {} received from {}", m.message_id,
                      Printable(it->second.queue), Printable(q.name)));
      FUZZ_CHECK(m.md5_of_body == riffle::Md5OfMessageBody(m.body), "ReceiveMessage: MD5OfBody");
      issued_handles_.insert(m.receipt_handle);
      Remember(handles_, m.receipt_handle);
    }
  }

  // A handle no receive returned is refused.
  void CheckHandle(const std::string& handle, bool accepted, std::string_view call) {
    FUZZ_CHECK(!accepted || issued_handles_.contains(handle),
               fmt::format("{} accepted receipt handle '{}' that no receive returned", call,
                           Printable(handle)));
  }

  void DeleteMessage(const Fields& f) {
    const QueueRef q = Queue(Field(f, 1));
    const std::string handle = Handle(Field(f, 2));
    const absl::Status s = sqs().DeleteMessage({.queue_url = q.url, .receipt_handle = handle});
    Check(s, "DeleteMessage");
    CheckHandle(handle, s.ok(), "DeleteMessage");
  }

  void ChangeVisibility(const Fields& f) {
    const QueueRef q = Queue(Field(f, 1));
    const std::string handle = Handle(Field(f, 2));
    const absl::Status s =
        sqs().ChangeMessageVisibility({.queue_url = q.url,
                                       .receipt_handle = handle,
                                       .visibility_timeout = Clamp(Int(Field(f, 3)), -1, 50000)});
    Check(s, "ChangeMessageVisibility");
    CheckHandle(handle, s.ok(), "ChangeMessageVisibility");
  }

  static constexpr std::string_view kEntryIds[] = {"e0", "e1", "e2", "e3", "e4", "e5",
                                                   "e6", "e7", "e8", "e9", "e10"};

  void CheckBatch(const absl::StatusOr<riffle::BatchResult>& r,
                  const std::vector<std::string>& handles, std::string_view call) {
    Check(r.status(), call);
    if (!r.ok()) return;
    FUZZ_CHECK(r->successful.size() + r->failed.size() == handles.size(),
               fmt::format("{}: results do not match the entries", call));
    for (const std::string& id : r->successful) {
      size_t i = 0;
      while (i < handles.size() && kEntryIds[i] != id) ++i;
      FUZZ_CHECK(i < handles.size(), fmt::format("{}: unknown id {}", call, Printable(id)));
      CheckHandle(handles[i], true, call);
    }
    CheckFailed(r->failed, call);
  }

  void DeleteMessageBatch(const Fields& f) {
    const QueueRef q = Queue(Field(f, 1));
    std::vector<std::string> handles;
    for (size_t i = 2; i < f.size() && handles.size() < kMaxSqsEntries; ++i) {
      handles.push_back(Handle(f[i]));
    }
    std::vector<riffle::DeleteMessageBatchRequestEntry> entries;
    for (size_t i = 0; i < handles.size(); ++i) entries.push_back({kEntryIds[i], handles[i]});
    CheckBatch(sqs().DeleteMessageBatch({.queue_url = q.url, .entries = entries}), handles,
               "DeleteMessageBatch");
  }

  void ChangeVisibilityBatch(const Fields& f) {
    const QueueRef q = Queue(Field(f, 1));
    std::vector<std::string> handles;
    std::vector<int> timeouts;
    for (size_t i = 2; i < f.size() && handles.size() < kMaxSqsEntries; i += 2) {
      handles.push_back(Handle(f[i]));
      timeouts.push_back(Clamp(Int(Field(f, i + 1)), -1, 50000));
    }
    std::vector<riffle::ChangeMessageVisibilityBatchRequestEntry> entries;
    for (size_t i = 0; i < handles.size(); ++i) {
      entries.push_back({kEntryIds[i], handles[i], timeouts[i]});
    }
    CheckBatch(sqs().ChangeMessageVisibilityBatch({.queue_url = q.url, .entries = entries}),
               handles, "ChangeMessageVisibilityBatch");
  }

  // ---- The clock and the fault plan ----

  void Advance(const Fields& f) {
    clock_.Advance(absl::Seconds(Clamp(Int(Field(f, 1)), 0, kMaxAdvanceSeconds)) +
                   absl::Milliseconds(Clamp(Int(Field(f, 2)), 0, 999)));
  }

  void AddFault(const Fields& f) {
    if (account_->faults().Counters().rules.size() >= kMaxFaultRules) return;
    const std::string_view operation = Field(f, 1);
    const int64_t count = Clamp(Int(Field(f, 3), 1), 1, 1000);
    std::string_view error = Field(f, 4);
    if (!riffle_fuzz::IsRiffleErrorName(error)) {
      const int64_t n = Int(error, -1);
      constexpr size_t kNames = std::size(riffle_fuzz::kRiffleErrorNames);
      error = n < 0 ? "" : riffle_fuzz::kRiffleErrorNames[static_cast<size_t>(n) % kNames];
    }
    const absl::Duration latency = absl::Milliseconds(Clamp(Int(Field(f, 7)), 0, 2000));
    riffle::FaultRule rule;
    switch (Field(f, 2).empty() ? 'n' : Field(f, 2)[0]) {
      case 'e':
        rule = riffle::FaultRule::Every(operation, static_cast<uint64_t>(count), error);
        break;
      case 'f':
        rule = riffle::FaultRule::Fraction(operation, static_cast<double>(count % 101) / 100.0,
                                           static_cast<uint64_t>(count), error);
        break;
      case 'd':
        rule = riffle::FaultRule::Delay(operation, latency);
        break;
      default:
        rule = riffle::FaultRule::FailNext(operation, static_cast<uint64_t>(count), error);
        break;
    }
    if (latency > absl::ZeroDuration()) rule.WithLatency(latency);
    if (!Field(f, 5).empty()) rule.OnResource(Field(f, 5));
    if (!Field(f, 6).empty()) rule.OnShard(ShardId(Field(f, 6)));
    const int id = account_->faults().Add(rule);
    if (!error.empty() && (operation == "PutObject" || operation == "*")) {
      write_fault_rules_.push_back(id);
    }
  }

  void RemoveFaults(const Fields& f) {
    if (f.size() < 2) {
      account_->faults().Clear();
      write_fault_rules_.clear();
      return;
    }
    const int id = Clamp(Int(f[1]), 0, 1000);
    (void)account_->faults().Remove(id);
    std::erase(write_fault_rules_, id);
  }

  riffle::ManualClock& clock_;
  std::unique_ptr<riffle::Account> account_;
  const std::filesystem::path scratch_;  // this input's directory buckets: d0, d1, ...

  // Kinesis: every record put, by sequence number; the references inputs name by index.
  std::map<riffle::SequenceNumber, PutRecordInfo> put_;
  std::deque<std::string> numbers_;
  std::deque<std::string> iterators_;
  std::deque<std::string> consumers_;
  std::deque<std::string> tokens_;  // NextToken and NextContinuationToken of every service
  std::map<std::string, absl::Time> created_;  // stream creation times seen, by name
  riffle::GetRecordsOutput records_;
  std::vector<std::unique_ptr<riffle::Subscription>> subscriptions_;

  // Firehose: the buckets delivery streams may write to, and a count of Firehose calls (any
  // of them may write objects); whether a delivery stream was deleted (any Firehose call may
  // then close it); the fault rules that can fail PutObject.
  std::set<std::string> delivery_buckets_;
  bool delivery_to_any_bucket_ = false;
  uint64_t firehose_epoch_ = 0;
  bool deleting_delivery_streams_ = false;
  std::vector<int> write_fault_rules_;

  // S3: the buckets kept in directories, and how many directories were made.
  std::set<std::string> directory_buckets_;
  int directories_ = 0;

  // S3: what PutObject wrote, by (bucket, key).
  std::map<std::pair<std::string, std::string>, KnownObject> objects_;

  // SQS: every message sent, by message id; receipt handles received.
  std::map<std::string, SentMessage> sent_;
  std::deque<std::string> handles_;
  std::set<std::string> issued_handles_;
  bool redrive_ = false;  // a RedrivePolicy was set: messages may move between queues
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string_view> lines = Split(riffle_fuzz::AsText(data, size), '\n');
  const Fields header = Split(lines[0], '|');
  const std::string_view flags = header[0];
  riffle::ManualClock clock;
  riffle::AccountOptions options;
  options.clock = &clock;
  options.enforce_limits = !flags.empty() && (static_cast<unsigned char>(flags[0]) & 1) != 0;
  options.create_duration = absl::Milliseconds(Clamp(Int(Field(header, 1)), 0, 120000));
  options.delete_duration = absl::Milliseconds(Clamp(Int(Field(header, 2)), 0, 120000));
  options.update_duration = absl::Milliseconds(Clamp(Int(Field(header, 3)), 0, 120000));
  if (!Field(header, 4).empty()) options.region = std::string(Field(header, 4));
  if (!Field(header, 5).empty()) options.account_id = std::string(Field(header, 5));
  options.quotas.shard_limit = Clamp(Int(Field(header, 6)), -1, 64);
  if (!Field(header, 7).empty()) {
    options.quotas.shards_per_stream = Clamp(Int(Field(header, 7)), 0, 16);
  }
  // Small rings, so that they wrap (and trim) within one input.
  options.stream_defaults.max_record_size_bytes = 2048;
  options.stream_defaults.ring_capacity_bytes =
      flags.find('t') != std::string_view::npos ? 16 << 10 : 64 << 10;
  if (flags.find('x') != std::string_view::npos) {
    options.stream_defaults.routing = riffle::RoutingMode::kXxh3;
  }
  if (flags.find('r') != std::string_view::npos) {
    options.stream_defaults.overflow_policy = riffle::OverflowPolicy::kRejectPut;
  }
  absl::StatusOr<std::unique_ptr<riffle::Account>> account = riffle::Account::Create(options);
  if (!account.ok()) {
    FUZZ_CHECK(riffle::IsInvalidArgumentException(account.status()),
               riffle_fuzz::Describe(account.status()));
    return 0;
  }
  // Directory buckets live in a directory of this input's, removed after it; nothing may
  // be written beside their directories.
  static const std::filesystem::path root = riffle_fuzz::MakeScratchDirectory("account");
  static uint64_t inputs = 0;
  const std::filesystem::path scratch = root / std::to_string(inputs++);
  std::filesystem::create_directories(scratch);
  {
    Harness harness(clock, *std::move(account), scratch);
    for (size_t i = 1; i < lines.size() && i <= kMaxLines; ++i) harness.Run(lines[i]);
  }
  for (const auto& e : std::filesystem::directory_iterator(root)) {
    FUZZ_CHECK(e.path() == scratch, fmt::format("{} written outside a bucket", e.path().string()));
  }
  for (const auto& e : std::filesystem::directory_iterator(scratch)) {
    const std::string name = e.path().filename().string();
    FUZZ_CHECK(e.is_directory() && name.starts_with('d'),
               fmt::format("{} written outside a bucket", e.path().string()));
  }
  std::filesystem::remove_all(scratch);
  return 0;
}
