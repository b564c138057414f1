// riffle::Firehose: the Amazon Data Firehose API of an Account (account.h), by delivery
// stream name. Each delivery stream is a riffle::DeliveryStream writing into a bucket of
// the account's S3 (s3.h), fed by PutRecord/PutRecordBatch (DirectPut) or by a stream of
// the account's Kinesis (KinesisStreamAsSource): there is no second implementation of
// buffering, processing, compression, retries or the error output.
//
//   riffle::Firehose& firehose = account->firehose();
//   (void)account->s3().CreateBucket({.bucket = "deliveries"});
//   (void)firehose.CreateDeliveryStream({
//       .delivery_stream_name = "orders",
//       .delivery_stream_type = riffle::DeliveryStreamType::kKinesisStreamAsSource,
//       .kinesis_stream_source_configuration =
//           riffle::KinesisStreamSourceConfiguration{.kinesis_stream_arn = stream_arn},
//       .extended_s3_destination_configuration = riffle::ExtendedS3DestinationConfiguration{
//           .bucket_arn = "arn:aws:s3:::deliveries", .prefix = "orders/"}});
//   firehose.Poll();  // host-driven delivery: call it as the clock moves
//
// Delivery is driven by the host: Poll() runs one step of every delivery stream on the
// calling thread (reads the Kinesis source, seals buffers whose size or interval is
// reached, writes objects, retries, writes the error output) and returns the objects
// written. No thread is started unless CreateDeliveryStreamInput::own_thread asks for one.
// With a ManualClock: advance the clock, then Poll().
//
// States move on the account's clock: a new delivery stream is CREATING for
// AccountOptions::create_duration (puts: ResourceNotFoundException, nothing is read), then
// ACTIVE; a deleted one is DELETING for delete_duration (puts are still accepted, as the
// service may), then gone: it then delivers what it buffered (DeliveryStream::Close, which
// attempts pending retries at once, then waits on the clock for retries of a bucket that
// still fails writes: with a ManualClock, clear such faults first).
//
// Errors are the service's (docs/aws-account.md has the table): ValidationException for a
// member that breaks its constraint, InvalidArgumentException, ResourceNotFoundException
// ("Firehose orders under account 000000000000 not found."), ResourceInUseException,
// LimitExceededException, ServiceUnavailableException ("Slow down.", the DirectPut rates
// with the limits on); and whatever the account's FaultPlan injects (operation names as
// the API's).
//
// Thread safety: every method may be called from any thread.
#ifndef RIFFLE_FIREHOSE_H_
#define RIFFLE_FIREHOSE_H_

#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "riffle/delivery_stream.h"
#include "riffle/firehose_types.h"

namespace riffle {

class Kinesis;
class S3;

namespace detail {
struct AccountCore;
struct FirehoseRegistry;
struct DeliveryStreamEntry;
}  // namespace detail

class Firehose {
 public:
  // Internal: use Account::firehose().
  Firehose(detail::AccountCore& core, Kinesis& kinesis, S3& s3);
  // Delivers what every delivery stream buffered (DeliveryStream::Close), then removes them.
  ~Firehose();
  Firehose(const Firehose&) = delete;
  Firehose& operator=(const Firehose&) = delete;

  // ResourceInUseException for a name in use; InvalidArgumentException for a source or
  // destination the account does not have, a source configuration with DirectPut or none
  // with KinesisStreamAsSource, a CompressionFormat DeliveryStream cannot write, a
  // processor or partitioning function missing while enabled, a Prefix the DeliveryStream
  // refuses, a tag key starting with "aws:".
  [[nodiscard]] absl::StatusOr<CreateDeliveryStreamOutput> CreateDeliveryStream(
      const CreateDeliveryStreamInput& input);
  // DELETING for AccountOptions::delete_duration, then gone (see above).
  [[nodiscard]] absl::Status DeleteDeliveryStream(const DeleteDeliveryStreamInput& input);
  [[nodiscard]] absl::StatusOr<DescribeDeliveryStreamOutput> DescribeDeliveryStream(
      const DescribeDeliveryStreamInput& input);
  [[nodiscard]] absl::StatusOr<ListDeliveryStreamsOutput> ListDeliveryStreams(
      const ListDeliveryStreamsInput& input = {});
  // Merges the update into the destination (DeliveryStream::UpdateDestination: what is
  // buffered is delivered first, under the old configuration), then VersionId goes up by
  // one and LastUpdateTimestamp is set. ResourceNotFoundException, ResourceInUseException
  // (not ACTIVE), ConcurrentModificationException (a VersionId that is not the current
  // one), InvalidArgumentException (unknown DestinationId, a bucket the account does not
  // have, dynamic partitioning turned on or off, a merged configuration CreateDeliveryStream
  // would refuse), ValidationException (member constraints).
  [[nodiscard]] absl::StatusOr<UpdateDestinationOutput> UpdateDestination(
      const UpdateDestinationInput& input);

  // DirectPut only: InvalidArgumentException "This operation is not permitted on
  // KinesisStreamAsSource delivery stream type." otherwise.
  [[nodiscard]] absl::StatusOr<FirehosePutRecordOutput> PutRecord(
      const FirehosePutRecordInput& input);
  // Invalid requests fail whole; otherwise each record is accepted or fails on its own
  // (ServiceUnavailableException: the rates with the limits on, or backpressure).
  [[nodiscard]] absl::StatusOr<PutRecordBatchOutput> PutRecordBatch(
      const PutRecordBatchInput& input);

  [[nodiscard]] absl::Status TagDeliveryStream(const TagDeliveryStreamInput& input);
  [[nodiscard]] absl::Status UntagDeliveryStream(const UntagDeliveryStreamInput& input);
  [[nodiscard]] absl::StatusOr<ListTagsForDeliveryStreamOutput> ListTagsForDeliveryStream(
      const ListTagsForDeliveryStreamInput& input);

  // riffle: the host-driven step of every delivery stream (see above); DELETING ones that
  // are due go. Returns the objects written.
  size_t Poll();
  // riffle: seals and delivers every buffer of the delivery stream now (DeliveryStream::
  // Flush). ResourceNotFoundException when there is none.
  [[nodiscard]] absl::StatusOr<size_t> Flush(std::string_view delivery_stream_name);
  // riffle: the DeliveryStream behind a name (metrics, last_error), nullptr when there is
  // none. Valid until the delivery stream is gone.
  DeliveryStream* FindDeliveryStream(std::string_view delivery_stream_name);

  // arn:aws:firehose:<region>:<account id>:deliverystream/<name>
  std::string DeliveryStreamArn(std::string_view delivery_stream_name) const;

 private:
  detail::AccountCore& core_;
  Kinesis& kinesis_;
  S3& s3_;
  std::unique_ptr<detail::FirehoseRegistry> registry_;
};

}  // namespace riffle

#endif  // RIFFLE_FIREHOSE_H_
