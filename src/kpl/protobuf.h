// protozero, the protobuf coding of the KPL format, with std::string_view as its view type.
// Every file of riffle::kpl includes protozero through this header so that the view type
// is the same everywhere (protozero's types depend on PROTOZERO_USE_VIEW).
#ifndef RIFFLE_KPL_PROTOBUF_H_
#define RIFFLE_KPL_PROTOBUF_H_

#include <string_view>

#define PROTOZERO_USE_VIEW std::string_view
#include <protozero/pbf_reader.hpp>
#include <protozero/pbf_writer.hpp>
#include <protozero/varint.hpp>

namespace riffle::kpl::detail {

// Field numbers and wire types of the KPL's messages (docs/kpl.md).
inline constexpr protozero::pbf_tag_type kPartitionKeyTable = 1;  // AggregatedRecord
inline constexpr protozero::pbf_tag_type kExplicitHashKeyTable = 2;
inline constexpr protozero::pbf_tag_type kRecords = 3;
inline constexpr protozero::pbf_tag_type kPartitionKeyIndex = 1;  // Record
inline constexpr protozero::pbf_tag_type kExplicitHashKeyIndex = 2;
inline constexpr protozero::pbf_tag_type kData = 3;
inline constexpr protozero::pbf_tag_type kTags = 4;
inline constexpr protozero::pbf_tag_type kTagKey = 1;  // Tag
inline constexpr protozero::pbf_tag_type kTagValue = 2;

}  // namespace riffle::kpl::detail

#endif  // RIFFLE_KPL_PROTOBUF_H_
