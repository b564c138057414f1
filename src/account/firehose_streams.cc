// Firehose: the control plane (create, describe, list, delete) and the host-driven step.
#include <algorithm>
#include <utility>
#include <vector>

#include "account/firehose_internal.h"
#include "account/firehose_source.h"
#include "common/names.h"
#include "common/validation.h"
#include "fmt/format.h"
#include "riffle/firehose.h"
#include "riffle/kinesis.h"
#include "riffle/s3.h"
#include "riffle/status.h"

namespace riffle {

using detail::DeliveryStreamEntry;
using detail::Violations;

std::string_view DeliveryStreamTypeName(DeliveryStreamType type) {
  switch (type) {
    case DeliveryStreamType::kDirectPut:
      return "DirectPut";
    case DeliveryStreamType::kKinesisStreamAsSource:
      return "KinesisStreamAsSource";
  }
  return "?";
}

namespace detail {

FirehoseRates FirehoseRatesFor(std::string_view region) {
  // The quota page: us-east-1, us-west-2 and eu-west-1 have the larger DirectPut quota.
  if (region == "us-east-1" || region == "us-west-2" || region == "eu-west-1") {
    return {.records_per_second = 500'000,
            .requests_per_second = 2'000,
            .bytes_per_second = 5ull << 20};
  }
  return {
      .records_per_second = 100'000, .requests_per_second = 1'000, .bytes_per_second = 1ull << 20};
}

namespace {

// The API's Tag members: letters, separators and digits of any script, and _ . : / = + - @ %
// (bytes of multi-byte UTF-8 count as letters); a key does not start with "aws:".
constexpr std::string_view kTagKeyPattern = R"(^(?!aws:)[\p{L}\p{Z}\p{N}_.:\/=+\-@%]*$)";
constexpr std::string_view kTagValuePattern = R"(^[\p{L}\p{Z}\p{N}_.:\/=+\-@%]*$)";

bool TagCharactersOk(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == ' ' || c == '_' || c == '.' || c == ':' || c == '/' ||
           c == '=' || c == '+' || c == '-' || c == '@' || c == '%';
  });
}

}  // namespace

void CheckFirehoseTagKey(std::string_view key, std::string_view member, Violations& v) {
  const std::size_t chars = Utf8Chars(key);
  v.MinLength(member, key, chars, 1);
  v.MaxLength(member, key, chars, 128);
  v.Pattern(member, key, kTagKeyPattern, TagCharactersOk(key) && !key.starts_with("aws:"));
}

void CheckFirehoseTagValue(std::string_view value, std::string_view member, Violations& v) {
  v.MaxLength(member, value, Utf8Chars(value), 256);
  v.Pattern(member, value, kTagValuePattern, TagCharactersOk(value));
}

absl::Status DeliveryStreamNotFound(std::string_view name, std::string_view account_id) {
  return ResourceNotFoundError(
      fmt::format("Firehose {} under account {} not found.", name, account_id));
}

absl::Status CheckFirehoseCallRate(AccountCore& core, std::string_view operation) {
  // Five calls per second each, per account (the service's quota page).
  static constexpr std::string_view kControlPlane[] = {
      "CreateDeliveryStream",      "DeleteDeliveryStream", "DescribeDeliveryStream",
      "ListDeliveryStreams",       "TagDeliveryStream",    "UntagDeliveryStream",
      "ListTagsForDeliveryStream", "UpdateDestination"};
  constexpr int kPerSecond = 5;
  if (std::find(std::begin(kControlPlane), std::end(kControlPlane), operation) ==
      std::end(kControlPlane)) {
    return absl::OkStatus();
  }
  if (core.TakeCall(operation, "firehose", kPerSecond)) return absl::OkStatus();
  return LimitExceededError(
      fmt::format("Rate exceeded for {} under account {}: at most {} calls per second.", operation,
                  core.account_id(), kPerSecond));
}

absl::Status AdmitFirehose(AccountCore& core, std::string_view operation, std::string_view name,
                           std::string_view arn) {
  if (core.limits) {
    if (absl::Status s = CheckFirehoseCallRate(core, operation); !s.ok()) return s;
  }
  if (!core.faults.active()) [[likely]] {
    return absl::OkStatus();
  }
  std::optional<FaultInjection> f =
      core.faults.Evaluate(operation, name, arn, {}, FaultScope::kRequest);
  if (!f) return absl::OkStatus();
  if (f->latency > absl::ZeroDuration()) core.Delay(f->latency);
  if (f->error.empty()) return absl::OkStatus();
  if (!f->message.empty()) return NamedError(f->error, f->message);
  // The service's wording for a delivery stream, where it differs from Kinesis'.
  if (f->error == kResourceNotFoundException && !name.empty()) {
    return NamedError(
        f->error, fmt::format("Firehose {} under account {} not found.", name, core.account_id()));
  }
  if (f->error == kLimitExceededException || f->error == kThrottlingException) {
    return NamedError(f->error, fmt::format("Rate exceeded for {} under account {}.", operation,
                                            core.account_id()));
  }
  return NamedError(f->error, InjectedMessage(f->error, operation, name, core.account_id(), {}));
}

}  // namespace detail

namespace {

constexpr std::string_view kDestinationId = "destinationId-000000000001";
constexpr std::string_view kCompressionFormats = "[UNCOMPRESSED, GZIP, ZIP, Snappy, HADOOP_SNAPPY]";

// A DeliveryStreamType that is none of the enumerators (an integer cast to the enum): the
// service's value set, which has sources riffle does not emulate.
void CheckDeliveryStreamType(DeliveryStreamType type, Violations& v) {
  if (DeliveryStreamTypeName(type) == "?") {
    v.EnumValue("deliveryStreamType", static_cast<int>(type),
                "[DirectPut, KinesisStreamAsSource, MSKAsSource, DatabaseAsSource]");
  }
}

std::optional<CompressionFormat> ParseCompression(std::string_view text) {
  if (text == "UNCOMPRESSED") return CompressionFormat::kUncompressed;
  if (text == "GZIP") return CompressionFormat::kGzip;
  if (text == "ZIP") return CompressionFormat::kZip;
  if (text == "Snappy") return CompressionFormat::kSnappy;
  if (text == "HADOOP_SNAPPY") return CompressionFormat::kHadoopSnappy;
  return std::nullopt;
}

// arn:<partition>:<service>:<region>:<account>:<resource>
struct ArnParts {
  std::string_view partition, service, region, account, resource;
};
std::optional<ArnParts> SplitArn(std::string_view arn) {
  std::string_view parts[6];
  for (int i = 0; i < 5; ++i) {
    const std::size_t colon = arn.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    parts[i] = arn.substr(0, colon);
    arn.remove_prefix(colon + 1);
  }
  parts[5] = arn;
  // The model's patterns take any partition (arn:.*:); whether it is the account's is
  // decided where the resource is looked up.
  if (parts[0] != "arn" || parts[1].empty()) return std::nullopt;
  return ArnParts{parts[1], parts[2], parts[3], parts[4], parts[5]};
}

bool KinesisArnOk(std::string_view arn) {
  auto p = SplitArn(arn);
  if (!p || p->service != "kinesis" || p->region.empty() ||
      !std::all_of(p->region.begin(), p->region.end(),
                   [](char c) {
                     return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-';
                   }) ||
      p->account.size() != 12 || !std::all_of(p->account.begin(), p->account.end(), [](char c) {
        return c >= '0' && c <= '9';
      })) {
    return false;
  }
  if (!p->resource.starts_with("stream/")) return false;
  return detail::IsValidName(p->resource.substr(7));
}

bool BucketArnOk(std::string_view arn) {
  auto p = SplitArn(arn);
  if (!p || p->service != "s3" || !p->region.empty() || !p->account.empty()) return false;
  const std::string_view b = p->resource;
  return !b.empty() && b.size() <= 255 && std::all_of(b.begin(), b.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

// The member constraints of an S3 destination, shared by CreateDeliveryStream's
// configuration and UpdateDestination's update (`member` is their name in messages; an
// absent member is not checked).
void CheckDestinationShapes(std::string_view member, std::optional<std::string_view> bucket_arn,
                            std::optional<std::string_view> role_arn,
                            std::optional<std::string_view> prefix,
                            std::optional<std::string_view> error_output_prefix,
                            const std::optional<BufferingHints>& hints,
                            std::optional<std::string_view> compression_format, Violations& v) {
  auto name = [member](std::string_view field) { return fmt::format("{}.{}", member, field); };
  if (bucket_arn) {
    const std::string bucket = name("bucketARN");
    v.MinLength(bucket, *bucket_arn, bucket_arn->size(), 1);
    v.MaxLength(bucket, *bucket_arn, bucket_arn->size(), 2048);
    v.Pattern(bucket, *bucket_arn, "arn:.*:s3:::[\\w\\.\\-]{1,255}", BucketArnOk(*bucket_arn));
  }
  if (role_arn) v.MaxLength(name("roleARN"), *role_arn, role_arn->size(), 512);
  if (prefix) v.MaxLength(name("prefix"), *prefix, prefix->size(), 1024);
  if (error_output_prefix) {
    v.MaxLength(name("errorOutputPrefix"), *error_output_prefix, error_output_prefix->size(), 1024);
  }
  if (hints) {
    v.Range(name("bufferingHints.sizeInMBs"), hints->size_in_mbs, 1, 128);
    v.Range(name("bufferingHints.intervalInSeconds"), hints->interval_in_seconds, 0, 900);
  }
  if (compression_format && !ParseCompression(*compression_format)) {
    v.Add(name("compressionFormat"), *compression_format,
          fmt::format("Member must satisfy enum value set: {}", kCompressionFormats));
  }
}

// The service's rules for a processing configuration.
absl::Status CheckProcessing(const ProcessingConfiguration& p) {
  if (p.enabled && !p.processor && !p.append_delimiter_to_record) {
    return InvalidArgumentError(
        "ProcessingConfiguration is enabled but names no processor (a Processor or "
        "AppendDelimiterToRecord).");
  }
  if (p.number_of_retries && (*p.number_of_retries < 0 || *p.number_of_retries > 300)) {
    return InvalidArgumentError(fmt::format(
        "NumberOfRetries is {}; the Lambda processor's NumberOfRetries must be between 0 and 300.",
        *p.number_of_retries));
  }
  return absl::OkStatus();
}

// The service's rules tying a destination's prefixes, dynamic partitioning and buffering.
absl::Status CheckPrefixRules(std::string_view prefix, std::string_view error_output_prefix,
                              bool partitioning, int interval_in_seconds) {
  // Dynamic partitioning needs an error output prefix, and refuses zero buffering.
  if (partitioning && error_output_prefix.empty()) {
    return InvalidArgumentError(
        "ErrorOutputPrefix is required when DynamicPartitioningConfiguration is enabled.");
  }
  // As the service words it (its guide: "ErrorOutputPrefix can be null only if Prefix
  // contains no expressions").
  if (error_output_prefix.empty() && prefix.find("!{") != std::string_view::npos) {
    return InvalidArgumentError(
        "Ths supplied prefix(es) do not satisfy the following constraint: ErrorOutputPrefix "
        "cannot be null or empty when Prefix contains expressions");
  }
  if (partitioning && interval_in_seconds == 0) {
    return InvalidArgumentError(
        "BufferingHints IntervalInSeconds 0 (zero buffering) is not available with "
        "DynamicPartitioningConfiguration enabled.");
  }
  return absl::OkStatus();
}

// The bucket a destination's BucketARN names, from the account's S3.
absl::StatusOr<std::shared_ptr<detail::BucketStore>> DestinationBucket(const S3& s3,
                                                                       std::string_view bucket_arn,
                                                                       std::string_view account_id,
                                                                       std::string_view partition) {
  const ArnParts parts = *SplitArn(bucket_arn);
  const std::string_view bucket_name = parts.resource;
  // A bucket of another partition is no bucket of this account's.
  std::shared_ptr<detail::BucketStore> bucket =
      parts.partition == partition ? s3.FindBucket(bucket_name) : nullptr;
  if (bucket == nullptr) {
    return InvalidArgumentError(
        fmt::format("Bucket {} does not exist in account {}: create it with CreateBucket first.",
                    bucket_name, account_id));
  }
  return bucket;
}

void CheckTags(std::span<const Tag> tags, std::string_view member, Violations& v) {
  if (tags.size() > 50) {
    v.AddRendered(member, fmt::format("[{} entries]", tags.size()),
                  "Member must have length less than or equal to 50");
  }
  for (std::size_t i = 0; i < tags.size() && i < 50; ++i) {
    detail::CheckFirehoseTagKey(tags[i].key, fmt::format("{}.{}.member.key", member, i + 1), v);
    detail::CheckFirehoseTagValue(tags[i].value, fmt::format("{}.{}.member.value", member, i + 1),
                                  v);
  }
}

// Removes the DELETING entries whose time is up; the caller drops them after unlocking
// (their DeliveryStreams Close() then, outside the registry's lock).
std::vector<std::shared_ptr<DeliveryStreamEntry>> TakeDueLocked(detail::FirehoseRegistry& r,
                                                                int64_t now_ms) {
  std::vector<std::shared_ptr<DeliveryStreamEntry>> gone;
  for (auto it = r.streams.begin(); it != r.streams.end();) {
    if (it->second->GoneAt(now_ms)) {
      gone.push_back(std::move(it->second));
      it = r.streams.erase(it);
    } else {
      ++it;
    }
  }
  return gone;
}

}  // namespace

Firehose::Firehose(detail::AccountCore& core, Kinesis& kinesis, S3& s3)
    : core_(core),
      kinesis_(kinesis),
      s3_(s3),
      registry_(std::make_unique<detail::FirehoseRegistry>()) {}

Firehose::~Firehose() {
  std::map<std::string, std::shared_ptr<DeliveryStreamEntry>, std::less<>> all;
  {
    std::lock_guard<std::mutex> lock(registry_->mu);
    all.swap(registry_->streams);
  }
  all.clear();  // each DeliveryStream Close()s: what it buffered is delivered
}

std::string Firehose::DeliveryStreamArn(std::string_view name) const {
  return fmt::format("arn:{}:firehose:{}:{}:deliverystream/{}",
                     detail::ArnPartition(core_.region()), core_.region(), core_.account_id(),
                     name);
}

absl::StatusOr<CreateDeliveryStreamOutput> Firehose::CreateDeliveryStream(
    const CreateDeliveryStreamInput& in) {
  {
    Violations v;
    v.Name("deliveryStreamName", in.delivery_stream_name, 64);
    CheckDeliveryStreamType(in.delivery_stream_type, v);
    if (in.kinesis_stream_source_configuration) {
      const KinesisStreamSourceConfiguration& k = *in.kinesis_stream_source_configuration;
      constexpr std::string_view kMember = "kinesisStreamSourceConfiguration.kinesisStreamARN";
      v.MinLength(kMember, k.kinesis_stream_arn, k.kinesis_stream_arn.size(), 1);
      v.MaxLength(kMember, k.kinesis_stream_arn, k.kinesis_stream_arn.size(), 512);
      v.Pattern(kMember, k.kinesis_stream_arn,
                "arn:.*:kinesis:[a-zA-Z0-9\\-]+:\\d{12}:stream/[a-zA-Z0-9_.-]+",
                KinesisArnOk(k.kinesis_stream_arn));
      v.MaxLength("kinesisStreamSourceConfiguration.roleARN", k.role_arn, k.role_arn.size(), 512);
    }
    if (in.extended_s3_destination_configuration) {
      const ExtendedS3DestinationConfiguration& d = *in.extended_s3_destination_configuration;
      CheckDestinationShapes("extendedS3DestinationConfiguration", d.bucket_arn, d.role_arn,
                             d.prefix, d.error_output_prefix, d.buffering_hints,
                             d.compression_format, v);
      if (d.dynamic_partitioning_configuration.retry_duration_in_seconds) {
        v.Range(
            "extendedS3DestinationConfiguration.dynamicPartitioningConfiguration.retryOptions."
            "durationInSeconds",
            *d.dynamic_partitioning_configuration.retry_duration_in_seconds, 0, 7200);
      }
    }
    CheckTags(in.tags, "tags", v);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  const std::string name(in.delivery_stream_name);
  const std::string arn = DeliveryStreamArn(name);
  if (absl::Status s = detail::AdmitFirehose(core_, "CreateDeliveryStream", name, arn); !s.ok()) {
    return s;
  }
  const bool from_kinesis = in.delivery_stream_type == DeliveryStreamType::kKinesisStreamAsSource;
  if (from_kinesis && !in.kinesis_stream_source_configuration) {
    return InvalidArgumentError(
        "KinesisStreamSourceConfiguration is required for the KinesisStreamAsSource delivery "
        "stream type.");
  }
  if (!from_kinesis && in.kinesis_stream_source_configuration) {
    return InvalidArgumentError(
        "KinesisStreamSourceConfiguration is only allowed for the KinesisStreamAsSource "
        "delivery stream type.");
  }
  if (!in.extended_s3_destination_configuration) {
    return InvalidArgumentError(
        "ExtendedS3DestinationConfiguration is required (the account serves the extended S3 "
        "destination only).");
  }
  const ExtendedS3DestinationConfiguration& dest = *in.extended_s3_destination_configuration;
  const ProcessingConfiguration& processing = dest.processing_configuration;
  if (absl::Status s = CheckProcessing(processing); !s.ok()) return s;
  const DynamicPartitioningConfiguration& partitioning = dest.dynamic_partitioning_configuration;
  if (partitioning.enabled && !partitioning.partition_key_function) {
    return InvalidArgumentError(
        "DynamicPartitioningConfiguration is enabled but has no partition key function.");
  }
  // The hints the stream will buffer by: the destination's, else those of the options
  // given beside the request, else the defaults (the rules check what will be used).
  const BufferingHints effective_hints = dest.buffering_hints ? *dest.buffering_hints
                                         : in.delivery_stream_options
                                             ? in.delivery_stream_options->buffering_hints
                                             : BufferingHints{};
  if (absl::Status s = CheckPrefixRules(dest.prefix, dest.error_output_prefix, partitioning.enabled,
                                        effective_hints.interval_in_seconds);
      !s.ok()) {
    return s;
  }

  // The destination: a bucket of this account.
  absl::StatusOr<std::shared_ptr<detail::BucketStore>> found = DestinationBucket(
      s3_, dest.bucket_arn, core_.account_id(), detail::ArnPartition(core_.region()));
  if (!found.ok()) return found.status();
  std::shared_ptr<detail::BucketStore> bucket = *std::move(found);

  // The source: a stream of this account, read from LATEST as of now.
  std::shared_ptr<Stream> source;
  std::optional<KinesisStreamSourceDescription> source_description;
  if (from_kinesis) {
    const KinesisStreamSourceConfiguration& k = *in.kinesis_stream_source_configuration;
    const ArnParts parts = *SplitArn(k.kinesis_stream_arn);
    const std::string_view stream_name = parts.resource.substr(7);
    if (parts.partition != detail::ArnPartition(core_.region()) || parts.region != core_.region() ||
        parts.account != core_.account_id()) {
      return InvalidArgumentError(
          fmt::format("KinesisStreamARN {} is not a stream of account {} in region {}.",
                      k.kinesis_stream_arn, core_.account_id(), core_.region()));
    }
    source = kinesis_.ShareStream(stream_name);
    if (source == nullptr) {
      return InvalidArgumentError(
          fmt::format("Stream {} under account {} not found.", stream_name, core_.account_id()));
    }
    source_description =
        KinesisStreamSourceDescription{.kinesis_stream_arn = std::string(k.kinesis_stream_arn),
                                       .role_arn = std::string(k.role_arn),
                                       .delivery_start_timestamp = core_.clock.Now()};
  }

  DeliveryStreamOptions o =
      in.delivery_stream_options != nullptr ? *in.delivery_stream_options : DeliveryStreamOptions{};
  o.delivery_stream_name = name;
  o.version = 1;
  // With the limits on, the stream is read as the service reads it: one GetRecords per
  // shard per second, leaving the rest of the shard's 5 reads/s to its other readers.
  std::unique_ptr<RecordSource> paced;
  if (source && core_.limits) {
    paced = std::make_unique<detail::PacedSource>(source, /*interval_ms=*/1000);
    o.source = StreamSource{paced.get(), &registry_->deaggregator};
  } else if (source) {
    o.source = StreamSource{source.get(), &registry_->deaggregator};
  } else {
    o.source = DirectPutSource{};
  }
  o.sink = bucket.get();
  o.error_sink = nullptr;
  o.prefix = std::string(dest.prefix);
  o.error_output_prefix = std::string(dest.error_output_prefix);
  o.buffering_hints = effective_hints;
  o.compression = *ParseCompression(dest.compression_format);
  o.processor = processing.enabled ? processing.processor : Processor();
  if (processing.number_of_retries) o.processor_retries = *processing.number_of_retries;
  if (processing.enabled && !processing.lambda_arn.empty()) {
    o.processor_arn = std::string(processing.lambda_arn);
  }
  o.append_newline_delimiter = processing.enabled && processing.append_delimiter_to_record;
  o.partition_key_function =
      partitioning.enabled ? partitioning.partition_key_function : PartitionKeyFunction();
  if (partitioning.enabled && partitioning.retry_duration_in_seconds) {
    o.retry_options.duration_in_seconds = *partitioning.retry_duration_in_seconds;
  }
  o.clock = &core_.clock;

  auto entry = std::make_shared<DeliveryStreamEntry>();
  entry->name = name;
  entry->arn = arn;
  entry->type = in.delivery_stream_type;
  entry->created_ms = core_.clock.NowMillis();
  entry->active_at_ms = detail::AddMillis(entry->created_ms, core_.options.create_duration);
  entry->own_thread = in.own_thread;
  entry->source = std::move(source_description);
  entry->destination =
      ExtendedS3DestinationDescription{.role_arn = std::string(dest.role_arn),
                                       .bucket_arn = std::string(dest.bucket_arn),
                                       .prefix = o.prefix,
                                       .error_output_prefix = o.error_output_prefix,
                                       .buffering_hints = o.buffering_hints,
                                       .compression_format = std::string(dest.compression_format),
                                       .encryption_configuration = {},
                                       .s3_backup_mode = "Disabled",
                                       .processing_enabled = processing.enabled,
                                       .dynamic_partitioning_enabled = partitioning.enabled};
  for (const Tag& t : in.tags) entry->tags[t.key] = t.value;
  const detail::FirehoseRates rates = detail::FirehoseRatesFor(core_.region());
  entry->records = detail::TokenBucket(rates.records_per_second, rates.records_per_second);
  entry->requests = detail::TokenBucket(rates.requests_per_second, rates.requests_per_second);
  entry->bytes = detail::TokenBucket(rates.bytes_per_second, rates.bytes_per_second);

  std::vector<std::shared_ptr<DeliveryStreamEntry>> gone;
  {
    std::lock_guard<std::mutex> lock(registry_->mu);
    gone = TakeDueLocked(*registry_, core_.clock.NowMillis());
    if (registry_->streams.contains(name)) {
      return ResourceInUseError(
          fmt::format("Firehose {} under accountId {} already exists", name, core_.account_id()));
    }
    auto ds = DeliveryStream::Create(std::move(o));
    if (!ds.ok()) return ds.status();
    entry->bucket = std::move(bucket);
    entry->source_stream = std::move(source);
    entry->paced_source = std::move(paced);
    entry->stream = *std::move(ds);
    if (entry->own_thread) {
      if (absl::Status s = entry->stream->Start(); !s.ok()) return s;
    }
    registry_->streams.emplace(name, entry);
  }
  return CreateDeliveryStreamOutput{.delivery_stream_arn = arn};
}

absl::Status Firehose::DeleteDeliveryStream(const DeleteDeliveryStreamInput& in) {
  {
    Violations v;
    v.Name("deliveryStreamName", in.delivery_stream_name, 64);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  const std::string arn = DeliveryStreamArn(in.delivery_stream_name);
  if (absl::Status s =
          detail::AdmitFirehose(core_, "DeleteDeliveryStream", in.delivery_stream_name, arn);
      !s.ok()) {
    return s;
  }
  std::vector<std::shared_ptr<DeliveryStreamEntry>> gone;
  std::lock_guard<std::mutex> lock(registry_->mu);
  const int64_t now = core_.clock.NowMillis();
  gone = TakeDueLocked(*registry_, now);
  auto it = registry_->streams.find(in.delivery_stream_name);
  if (it == registry_->streams.end()) {
    return detail::DeliveryStreamNotFound(in.delivery_stream_name, core_.account_id());
  }
  DeliveryStreamEntry& e = *it->second;
  if (e.deleted_at_ms.load(std::memory_order_acquire) != INT64_MAX) return absl::OkStatus();
  // The service deletes a stream that is ACTIVE (or failed), never one still CREATING.
  if (e.StatusAt(now) == DeliveryStreamStatus::kCreating) {
    return ResourceInUseError(fmt::format(
        "Firehose {} under accountId {} is in CREATING state and cannot be deleted until it is "
        "ACTIVE.",
        in.delivery_stream_name, core_.account_id()));
  }
  e.deleted_at_ms.store(detail::AddMillis(now, core_.options.delete_duration),
                        std::memory_order_release);
  // Gone now when there is no DELETING time: the entry is dropped (and Close()s) after the
  // lock is released, since `gone` is declared before the lock.
  for (auto& due : TakeDueLocked(*registry_, now)) gone.push_back(std::move(due));
  return absl::OkStatus();
}

absl::StatusOr<DescribeDeliveryStreamOutput> Firehose::DescribeDeliveryStream(
    const DescribeDeliveryStreamInput& in) {
  {
    Violations v;
    v.Name("deliveryStreamName", in.delivery_stream_name, 64);
    if (in.limit) v.Range("limit", *in.limit, 1, 10000);
    if (!in.exclusive_start_destination_id.empty()) {
      v.MaxLength("exclusiveStartDestinationId", in.exclusive_start_destination_id,
                  in.exclusive_start_destination_id.size(), 100);
    }
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  const std::string arn = DeliveryStreamArn(in.delivery_stream_name);
  if (absl::Status s =
          detail::AdmitFirehose(core_, "DescribeDeliveryStream", in.delivery_stream_name, arn);
      !s.ok()) {
    return s;
  }
  std::vector<std::shared_ptr<DeliveryStreamEntry>> gone;
  std::lock_guard<std::mutex> lock(registry_->mu);
  const int64_t now = core_.clock.NowMillis();
  gone = TakeDueLocked(*registry_, now);
  auto it = registry_->streams.find(in.delivery_stream_name);
  if (it == registry_->streams.end()) {
    return detail::DeliveryStreamNotFound(in.delivery_stream_name, core_.account_id());
  }
  const DeliveryStreamEntry& e = *it->second;
  DescribeDeliveryStreamOutput out;
  DeliveryStreamDescription& d = out.delivery_stream_description;
  d.delivery_stream_name = e.name;
  d.delivery_stream_arn = e.arn;
  d.delivery_stream_status = e.StatusAt(now);
  d.delivery_stream_type = e.type;
  d.create_timestamp = absl::FromUnixMillis(e.created_ms);
  d.version_id = std::to_string(e.stream->version());
  if (e.last_update_ms != INT64_MIN)
    d.last_update_timestamp = absl::FromUnixMillis(e.last_update_ms);
  d.source = e.source;
  if (in.exclusive_start_destination_id < kDestinationId) {
    d.destinations.push_back({.destination_id = std::string(kDestinationId),
                              .extended_s3_destination_description = e.destination});
  }
  return out;
}

absl::StatusOr<UpdateDestinationOutput> Firehose::UpdateDestination(
    const UpdateDestinationInput& in) {
  {
    Violations v;
    v.Name("deliveryStreamName", in.delivery_stream_name, 64);
    // A required id: null when empty, else its length and characters.
    auto id = [&v](std::string_view member, std::string_view value, std::size_t max,
                   std::string_view pattern, auto char_ok) {
      if (value.empty()) return v.Null(member);
      v.MaxLength(member, value, value.size(), max);
      v.Pattern(member, value, pattern, std::all_of(value.begin(), value.end(), char_ok));
    };
    id("currentDeliveryStreamVersionId", in.current_delivery_stream_version_id, 50, "[0-9]+",
       [](char c) { return c >= '0' && c <= '9'; });
    id("destinationId", in.destination_id, 100, "[a-zA-Z0-9-]+",
       [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-'; });
    if (in.extended_s3_destination_update) {
      const ExtendedS3DestinationUpdate& d = *in.extended_s3_destination_update;
      CheckDestinationShapes("extendedS3DestinationUpdate", d.bucket_arn, d.role_arn, d.prefix,
                             d.error_output_prefix, d.buffering_hints, d.compression_format, v);
    }
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  const std::string name(in.delivery_stream_name);
  const std::string arn = DeliveryStreamArn(name);
  if (absl::Status s = detail::AdmitFirehose(core_, "UpdateDestination", name, arn); !s.ok()) {
    return s;
  }
  std::shared_ptr<DeliveryStreamEntry> entry;
  ExtendedS3DestinationDescription current;
  {
    std::vector<std::shared_ptr<DeliveryStreamEntry>> gone;
    std::lock_guard<std::mutex> lock(registry_->mu);
    const int64_t now = core_.clock.NowMillis();
    gone = TakeDueLocked(*registry_, now);
    auto it = registry_->streams.find(name);
    if (it == registry_->streams.end()) {
      return detail::DeliveryStreamNotFound(name, core_.account_id());
    }
    const DeliveryStreamStatus status = it->second->StatusAt(now);
    if (status != DeliveryStreamStatus::kActive) {
      return ResourceInUseError(fmt::format(
          "Firehose {} under accountId {} is in {} state; only an ACTIVE one can be updated.", name,
          core_.account_id(), DeliveryStreamStatusName(status)));
    }
    entry = it->second;
  }
  // One update at a time: the version check, the stream's update and the description
  // change together (a second update read the description before the first wrote it).
  std::lock_guard<std::mutex> update_lock(entry->update_mu);
  {
    std::lock_guard<std::mutex> lock(registry_->mu);
    current = entry->destination;
  }
  if (in.destination_id != kDestinationId) {
    return InvalidArgumentError(
        fmt::format("Destination Id {} does not exist for Firehose {}.", in.destination_id, name));
  }
  // The version: compared here for the message, and again by the DeliveryStream, atomically
  // with the update.
  const int version = entry->stream->version();
  if (in.current_delivery_stream_version_id != std::to_string(version)) {
    return NamedError(kConcurrentModificationException,
                      fmt::format("Cannot update Firehose {}: its current version is {}, not {}.",
                                  name, version, in.current_delivery_stream_version_id));
  }
  if (!in.extended_s3_destination_update) {
    return InvalidArgumentError(
        "ExtendedS3DestinationUpdate is required (the account serves the extended S3 "
        "destination only).");
  }
  const ExtendedS3DestinationUpdate& d = *in.extended_s3_destination_update;
  if (d.dynamic_partitioning_configuration &&
      (d.dynamic_partitioning_configuration->enabled != current.dynamic_partitioning_enabled ||
       d.dynamic_partitioning_configuration->partition_key_function)) {
    return InvalidArgumentError(
        "DynamicPartitioningConfiguration cannot be changed on an existing Firehose stream: "
        "dynamic partitioning is enabled or disabled at creation only.");
  }
  // The merged destination, checked by CreateDeliveryStream's rules.
  const std::string prefix = d.prefix ? std::string(*d.prefix) : current.prefix;
  const std::string error_prefix =
      d.error_output_prefix ? std::string(*d.error_output_prefix) : current.error_output_prefix;
  const BufferingHints hints = d.buffering_hints.value_or(current.buffering_hints);
  if (absl::Status s = CheckPrefixRules(prefix, error_prefix, current.dynamic_partitioning_enabled,
                                        hints.interval_in_seconds);
      !s.ok()) {
    return s;
  }
  DestinationUpdate u;
  u.expected_version = version;
  u.prefix = prefix;
  u.error_output_prefix = error_prefix;
  u.buffering_hints = hints;
  if (d.compression_format) u.compression = *ParseCompression(*d.compression_format);
  std::shared_ptr<detail::BucketStore> bucket;
  if (d.bucket_arn) {
    absl::StatusOr<std::shared_ptr<detail::BucketStore>> found = DestinationBucket(
        s3_, *d.bucket_arn, core_.account_id(), detail::ArnPartition(core_.region()));
    if (!found.ok()) return found.status();
    bucket = *std::move(found);
    u.sink = bucket.get();
  }
  if (d.processing_configuration) {
    const ProcessingConfiguration& p = *d.processing_configuration;
    if (absl::Status s = CheckProcessing(p); !s.ok()) return s;
    u.processor = p.enabled ? p.processor : Processor();
    u.append_newline_delimiter = p.enabled && p.append_delimiter_to_record;
    u.processor_retries = p.number_of_retries.value_or(3);
    u.processor_arn = p.enabled ? std::string(p.lambda_arn) : std::string();
  }
  if (absl::Status s = entry->stream->UpdateDestination(u); !s.ok()) return s;

  std::lock_guard<std::mutex> lock(registry_->mu);
  ExtendedS3DestinationDescription& desc = entry->destination;
  desc.prefix = prefix;
  desc.error_output_prefix = error_prefix;
  desc.buffering_hints = hints;
  if (d.compression_format) desc.compression_format = std::string(*d.compression_format);
  if (d.role_arn) desc.role_arn = std::string(*d.role_arn);
  if (d.bucket_arn) {
    desc.bucket_arn = std::string(*d.bucket_arn);
    entry->bucket = std::move(bucket);
  }
  if (d.processing_configuration) desc.processing_enabled = d.processing_configuration->enabled;
  entry->last_update_ms = core_.clock.NowMillis();
  return UpdateDestinationOutput{};
}

absl::StatusOr<ListDeliveryStreamsOutput> Firehose::ListDeliveryStreams(
    const ListDeliveryStreamsInput& in) {
  {
    Violations v;
    if (in.limit) v.Range("limit", *in.limit, 1, 10000);
    if (in.delivery_stream_type) CheckDeliveryStreamType(*in.delivery_stream_type, v);
    if (!in.exclusive_start_delivery_stream_name.empty()) {
      v.Name("exclusiveStartDeliveryStreamName", in.exclusive_start_delivery_stream_name, 64);
    }
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  if (absl::Status s = detail::AdmitFirehose(core_, "ListDeliveryStreams", {}, {}); !s.ok()) {
    return s;
  }
  const std::size_t limit = static_cast<std::size_t>(in.limit.value_or(10));
  ListDeliveryStreamsOutput out;
  std::vector<std::shared_ptr<DeliveryStreamEntry>> gone;
  std::lock_guard<std::mutex> lock(registry_->mu);
  gone = TakeDueLocked(*registry_, core_.clock.NowMillis());
  auto it = in.exclusive_start_delivery_stream_name.empty()
                ? registry_->streams.begin()
                : registry_->streams.upper_bound(in.exclusive_start_delivery_stream_name);
  for (; it != registry_->streams.end(); ++it) {
    if (in.delivery_stream_type && it->second->type != *in.delivery_stream_type) continue;
    if (out.delivery_stream_names.size() == limit) {
      out.has_more_delivery_streams = true;
      break;
    }
    out.delivery_stream_names.push_back(it->first);
  }
  return out;
}

size_t Firehose::Poll() {
  std::vector<std::shared_ptr<DeliveryStreamEntry>> entries;
  std::vector<std::shared_ptr<DeliveryStreamEntry>> gone;
  {
    std::lock_guard<std::mutex> lock(registry_->mu);
    gone = TakeDueLocked(*registry_, core_.clock.NowMillis());
    entries.reserve(registry_->streams.size());
    for (const auto& [name, e] : registry_->streams) entries.push_back(e);
    if (!entries.empty()) {
      const size_t start = registry_->poll_start++ % entries.size();
      std::rotate(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(start),
                  entries.end());
    }
  }
  size_t written = 0;
  const int64_t now = core_.clock.NowMillis();
  for (const auto& e : entries) {
    if (e->own_thread || e->StatusAt(now) == DeliveryStreamStatus::kCreating) continue;
    written += e->stream->Poll();
  }
  return written;
}

absl::StatusOr<size_t> Firehose::Flush(std::string_view name) {
  std::shared_ptr<DeliveryStreamEntry> e;
  {
    std::lock_guard<std::mutex> lock(registry_->mu);
    e = registry_->FindLive(name, core_.clock.NowMillis());
  }
  if (e == nullptr) return detail::DeliveryStreamNotFound(name, core_.account_id());
  return e->stream->Flush();
}

DeliveryStream* Firehose::FindDeliveryStream(std::string_view name) {
  std::lock_guard<std::mutex> lock(registry_->mu);
  const std::shared_ptr<DeliveryStreamEntry> e = registry_->FindLive(name, core_.clock.NowMillis());
  return e == nullptr ? nullptr : e->stream.get();
}

}  // namespace riffle
