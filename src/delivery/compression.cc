#include "delivery/compression.h"

#include <snappy.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "fmt/format.h"
#include "riffle/delivery_stream.h"

namespace riffle::detail {
namespace {

constexpr size_t kSnappyFrameChunk = 65536;        // framing format's maximum
constexpr size_t kHadoopSnappyBlock = 256 * 1024;  // Hadoop's default buffer size
constexpr char kSnappyStreamIdentifier[] = "\xff\x06\x00\x00sNaPpY";

absl::Status CodecError(std::string_view codec, std::string_view what) {
  return InternalFailureError(fmt::format("{}: {}", codec, what));
}

void PutLe16(std::string& s, uint32_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>((v >> 8) & 0xff));
}
void PutLe32(std::string& s, uint32_t v) {
  PutLe16(s, v & 0xffff);
  PutLe16(s, v >> 16);
}
void PutBe32(std::string& s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xff));
}
uint32_t GetLe(std::string_view s, size_t at, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}
uint32_t GetBe32(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}

uint32_t MaskCrc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

std::array<uint32_t, 256> MakeCrc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    table[i] = c;
  }
  return table;
}

uint32_t Crc32cSoftware(const unsigned char* p, size_t n, uint32_t crc) {
  static const std::array<uint32_t, 256> table = MakeCrc32cTable();
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(const unsigned char* p, size_t n,
                                                          uint32_t crc) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = __builtin_ia32_crc32qi(c32, *p);
  return c32;
}
#endif

// Deflate emits at most 258 bytes per 2 bits (a longest match with one-bit codes): no
// stream inflates to more than 1032 times its size.
constexpr uint64_t kMaxDeflateRatio = 1032;
// Snappy's densest element copies 64 bytes for a 3-byte tag.
constexpr uint64_t kMaxSnappyRatio = 22;
constexpr size_t kSnappyFrameMaxData = 65536;  // the framing format's limit per chunk

absl::Status InputError(std::string_view codec, std::string_view what) {
  return InvalidArgumentError(fmt::format("{}: {}", codec, what));
}

// Where `input` may expand to: the format's ratio, and at most `max_output` bytes.
size_t OutputBound(size_t input_size, uint64_t ratio, size_t max_output) {
  const uint64_t bound = input_size > UINT64_MAX / ratio ? UINT64_MAX : input_size * ratio;
  return static_cast<size_t>(std::min<uint64_t>(bound, max_output));
}

// Inflates a whole gzip or raw-deflate stream (by windowBits) into *out, which grows
// geometrically and never past `limit` bytes: more output is an error.
absl::Status Inflate(std::string_view codec, std::string_view input, int window_bits, size_t limit,
                     std::string* out) {
  if (input.size() > std::numeric_limits<uInt>::max()) {
    return InputError(codec, "input over 4 GiB");
  }
  z_stream z{};
  if (inflateInit2(&z, window_bits) != Z_OK) return CodecError("zlib", "inflateInit2 failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
  z.avail_in = static_cast<uInt>(input.size());
  out->clear();
  // One byte of room past the limit tells an output of exactly `limit` bytes (zlib then
  // reaches the end of the stream) from a longer one.
  const size_t room = limit == std::numeric_limits<size_t>::max() ? limit : limit + 1;
  int rc = Z_OK;
  while (rc == Z_OK && out->size() < room) {
    const size_t old = out->size();
    const size_t step =
        std::min<size_t>({room - old, std::max<size_t>({4096, old, input.size() * 2}),
                          std::numeric_limits<uInt>::max()});
    out->resize(old + step);
    z.next_out = reinterpret_cast<Bytef*>(out->data() + old);
    z.avail_out = static_cast<uInt>(step);
    rc = inflate(&z, Z_NO_FLUSH);
    out->resize(out->size() - z.avail_out);
    if (rc == Z_BUF_ERROR && z.avail_in > 0) rc = Z_OK;  // only out of output space
  }
  inflateEnd(&z);
  if (out->size() > limit || (rc == Z_OK && out->size() >= room)) {
    out->clear();
    return InputError(codec, fmt::format("inflates to more than {} bytes", limit));
  }
  if (rc != Z_STREAM_END) {
    out->clear();
    return InputError(codec, fmt::format("inflate failed ({})", rc));
  }
  return absl::OkStatus();
}

// The error for output that would pass max_output_bytes.
absl::Status OverMaxOutput(std::string_view codec, size_t max_output_bytes) {
  return InputError(codec, fmt::format("output over max_output_bytes ({})", max_output_bytes));
}

// Appends one raw Snappy block to *out, after checking the length it declares against what
// the block's size can encode, the format's `limit` and `max_output_bytes`: nothing is
// allocated for a false length.
absl::Status AppendSnappyBlock(std::string_view codec, std::string_view block, size_t limit,
                               size_t max_output_bytes, std::string* out) {
  size_t length = 0;
  if (!snappy::GetUncompressedLength(block.data(), block.size(), &length)) {
    return InputError(codec, "corrupt block length");
  }
  const size_t possible = OutputBound(block.size(), kMaxSnappyRatio, limit);
  if (length > possible) {
    return InputError(codec, fmt::format("a {}-byte block declares {} bytes; at most {} fit",
                                         block.size(), length, possible));
  }
  if (length > max_output_bytes - out->size()) return OverMaxOutput(codec, max_output_bytes);
  const size_t at = out->size();
  out->resize(at + length);
  if (!snappy::RawUncompress(block.data(), block.size(), out->data() + at)) {
    out->resize(at);
    return InputError(codec, "corrupt block");
  }
  return absl::OkStatus();
}

}  // namespace

uint32_t Crc32c(std::string_view data, uint32_t crc) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  crc = ~crc;
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  crc = hardware ? Crc32cHardware(p, data.size(), crc) : Crc32cSoftware(p, data.size(), crc);
#else
  crc = Crc32cSoftware(p, data.size(), crc);
#endif
  return ~crc;
}

struct Compressor::Zlib {
  z_stream z{};
  bool initialized = false;
  ~Zlib() {
    if (initialized) deflateEnd(&z);
  }
};

Compressor::Compressor(CompressionFormat format, int gzip_level)
    : format_(format), level_(gzip_level), zlib_(std::make_unique<Zlib>()) {}
Compressor::~Compressor() = default;

absl::Status Compressor::Compress(std::string_view input, std::string_view entry_name,
                                  std::string* out) {
  out->clear();
  switch (format_) {
    case CompressionFormat::kUncompressed:
      out->assign(input);
      return absl::OkStatus();
    case CompressionFormat::kGzip:
    case CompressionFormat::kZip: {
      const bool zip = format_ == CompressionFormat::kZip;
      if (input.size() > 0xffffffffu) {
        return InvalidArgumentError("An object over 4 GiB cannot be compressed (no ZIP64).");
      }
      if (!zlib_->initialized) {
        // windowBits 15+16 writes a gzip header and trailer; -15 writes raw deflate for ZIP.
        if (deflateInit2(&zlib_->z, level_, Z_DEFLATED, zip ? -15 : 15 + 16, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
          return CodecError("zlib", "deflateInit2 failed");
        }
        zlib_->initialized = true;
      } else {
        deflateReset(&zlib_->z);
      }
      z_stream& z = zlib_->z;
      const uint32_t crc = zip ? crc32(0, reinterpret_cast<const Bytef*>(input.data()),
                                       static_cast<uInt>(input.size()))
                               : 0;
      const size_t header = zip ? 30 + entry_name.size() : 0;
      out->resize(header + deflateBound(&z, static_cast<uLong>(input.size())));
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
      z.avail_in = static_cast<uInt>(input.size());
      z.next_out = reinterpret_cast<Bytef*>(out->data() + header);
      z.avail_out = static_cast<uInt>(out->size() - header);
      if (deflate(&z, Z_FINISH) != Z_STREAM_END) return CodecError("zlib", "deflate failed");
      const size_t compressed = z.total_out;
      out->resize(header + compressed);
      if (!zip) return absl::OkStatus();
      // One stored-size entry; the header is written after deflating to know the sizes.
      std::string head;
      PutLe32(head, 0x04034b50);
      PutLe16(head, 20);      // version needed: deflate
      PutLe16(head, 0x0800);  // names are UTF-8
      PutLe16(head, 8);       // deflate
      PutLe16(head, 0);       // 00:00:00
      PutLe16(head, 0x21);    // 1980-01-01: objects carry their time in the key instead
      PutLe32(head, crc);
      PutLe32(head, static_cast<uint32_t>(compressed));
      PutLe32(head, static_cast<uint32_t>(input.size()));
      PutLe16(head, static_cast<uint32_t>(entry_name.size()));
      PutLe16(head, 0);
      head.append(entry_name);
      std::memcpy(out->data(), head.data(), head.size());
      const size_t directory_offset = out->size();
      PutLe32(*out, 0x02014b50);
      PutLe16(*out, 20);         // made by: MS-DOS attributes, spec 2.0
      out->append(head, 4, 26);  // same fields as the local header from "version needed"
      PutLe16(*out, 0);          // comment length
      PutLe16(*out, 0);          // disk number
      PutLe16(*out, 0);          // internal attributes
      PutLe32(*out, 0);          // external attributes
      PutLe32(*out, 0);          // local header offset
      out->append(entry_name);
      const size_t directory_size = out->size() - directory_offset;
      PutLe32(*out, 0x06054b50);
      PutLe32(*out, 0);  // disk numbers
      PutLe16(*out, 1);
      PutLe16(*out, 1);
      PutLe32(*out, static_cast<uint32_t>(directory_size));
      PutLe32(*out, static_cast<uint32_t>(directory_offset));
      PutLe16(*out, 0);
      return absl::OkStatus();
    }
    case CompressionFormat::kSnappy: {
      out->append(kSnappyStreamIdentifier, sizeof(kSnappyStreamIdentifier) - 1);
      for (size_t at = 0; at < input.size(); at += kSnappyFrameChunk) {
        const std::string_view chunk = input.substr(at, kSnappyFrameChunk);
        const size_t start = out->size();
        out->resize(start + 8 + snappy::MaxCompressedLength(chunk.size()));
        size_t n = 0;
        snappy::RawCompress(chunk.data(), chunk.size(), out->data() + start + 8, &n);
        const bool raw = n >= chunk.size();
        if (raw) {
          n = chunk.size();
          std::memcpy(out->data() + start + 8, chunk.data(), n);
        }
        out->resize(start + 8 + n);
        const uint32_t length = static_cast<uint32_t>(n + 4);
        const uint32_t crc = MaskCrc(Crc32c(chunk));
        char* h = out->data() + start;
        h[0] = raw ? 0x01 : 0x00;
        for (int i = 0; i < 3; ++i) h[1 + i] = static_cast<char>((length >> (8 * i)) & 0xff);
        for (int i = 0; i < 4; ++i) h[4 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
      }
      return absl::OkStatus();
    }
    case CompressionFormat::kHadoopSnappy: {
      for (size_t at = 0; at < input.size(); at += kHadoopSnappyBlock) {
        const std::string_view block = input.substr(at, kHadoopSnappyBlock);
        PutBe32(*out, static_cast<uint32_t>(block.size()));
        const size_t start = out->size();
        out->resize(start + 4 + snappy::MaxCompressedLength(block.size()));
        size_t n = 0;
        snappy::RawCompress(block.data(), block.size(), out->data() + start + 4, &n);
        out->resize(start + 4 + n);
        for (int i = 0; i < 4; ++i) {
          (*out)[start + i] = static_cast<char>((n >> (24 - 8 * i)) & 0xff);
        }
      }
      return absl::OkStatus();
    }
  }
  return InvalidArgumentError("CompressionFormat is not a known value.");
}

std::string_view FileExtension(CompressionFormat format) {
  switch (format) {
    case CompressionFormat::kGzip:
      return ".gz";
    case CompressionFormat::kZip:
      return ".zip";
    case CompressionFormat::kSnappy:
    case CompressionFormat::kHadoopSnappy:
      return ".snappy";
    default:
      return "";
  }
}

namespace {

absl::Status DecompressInto(CompressionFormat format, std::string_view input,
                            size_t max_output_bytes, std::string* out) {
  auto room_for = [&](std::string_view codec, size_t more) -> absl::Status {
    if (more <= max_output_bytes - out->size()) return absl::OkStatus();
    return OverMaxOutput(codec, max_output_bytes);
  };
  switch (format) {
    case CompressionFormat::kUncompressed:
      if (absl::Status s = room_for("uncompressed", input.size()); !s.ok()) return s;
      out->assign(input);
      return absl::OkStatus();
    case CompressionFormat::kGzip:
      return Inflate("gzip", input, 15 + 16,
                     OutputBound(input.size(), kMaxDeflateRatio, max_output_bytes), out);
    case CompressionFormat::kZip: {
      if (input.size() < 30 || GetLe(input, 0, 4) != 0x04034b50) {
        return InputError("zip", "no local file header");
      }
      const uint32_t flags = GetLe(input, 6, 2);
      const uint32_t method = GetLe(input, 8, 2);
      const uint32_t crc = GetLe(input, 14, 4);
      const uint32_t compressed = GetLe(input, 18, 4);
      const uint32_t size = GetLe(input, 22, 4);
      const size_t data = 30 + GetLe(input, 26, 2) + GetLe(input, 28, 2);
      if (method != 8 || (flags & 0x0009) != 0) {
        return InputError("zip",
                          "only deflated, unencrypted entries with sizes in the local "
                          "header are supported");
      }
      if (data > input.size() || input.size() - data < compressed) {
        return InputError("zip", "truncated entry");
      }
      const std::string_view deflated = input.substr(data, compressed);
      if (size > OutputBound(deflated.size(), kMaxDeflateRatio, max_output_bytes)) {
        return InputError(
            "zip",
            fmt::format("a {}-byte entry declares {} bytes; at most {} fit", deflated.size(), size,
                        OutputBound(deflated.size(), kMaxDeflateRatio, max_output_bytes)));
      }
      if (absl::Status s = Inflate("zip", deflated, -15, size, out); !s.ok()) return s;
      if (out->size() != size || crc32(0, reinterpret_cast<const Bytef*>(out->data()),
                                       static_cast<uInt>(out->size())) != crc) {
        out->clear();
        return InputError("zip", "size or CRC-32 mismatch");
      }
      return absl::OkStatus();
    }
    case CompressionFormat::kSnappy: {
      const size_t id = sizeof(kSnappyStreamIdentifier) - 1;
      if (input.substr(0, id) != std::string_view(kSnappyStreamIdentifier, id)) {
        return InputError("snappy", "no stream identifier");
      }
      for (size_t at = id; at < input.size();) {
        if (input.size() - at < 4) return InputError("snappy", "truncated chunk header");
        const uint8_t type = static_cast<uint8_t>(input[at]);
        const size_t length = GetLe(input, at + 1, 3);
        if (input.size() - at - 4 < length) return InputError("snappy", "truncated chunk");
        const std::string_view body = input.substr(at + 4, length);
        at += 4 + length;
        if (type == 0xff) {  // the stream identifier again (concatenated streams)
          if (body != std::string_view(kSnappyStreamIdentifier + 4, id - 4)) {
            return InputError("snappy", "corrupt stream identifier");
          }
          continue;
        }
        if (type >= 0x80) continue;  // reserved skippable chunk (0xfe: padding)
        if (type > 0x01) {
          return InputError("snappy", fmt::format("reserved unskippable chunk type {}", type));
        }
        if (body.size() < 4) return InputError("snappy", "chunk without a checksum");
        const uint32_t crc = GetLe(body, 0, 4);
        const std::string_view payload = body.substr(4);
        const size_t start = out->size();
        if (type == 0x00) {
          if (absl::Status s =
                  AppendSnappyBlock("snappy", payload, kSnappyFrameMaxData, max_output_bytes, out);
              !s.ok()) {
            return s;
          }
        } else {
          if (payload.size() > kSnappyFrameMaxData) {
            return InputError("snappy", fmt::format("an uncompressed chunk of {} bytes; at "
                                                    "most {}",
                                                    payload.size(), kSnappyFrameMaxData));
          }
          if (absl::Status s = room_for("snappy", payload.size()); !s.ok()) return s;
          out->append(payload);
        }
        const std::string_view chunk = std::string_view(*out).substr(start);
        if (MaskCrc(Crc32c(chunk)) != crc) return InputError("snappy", "CRC-32C mismatch");
      }
      return absl::OkStatus();
    }
    case CompressionFormat::kHadoopSnappy: {
      // Blocks of [raw length][compressed length][Snappy block]...: one or more Snappy
      // blocks whose lengths add up to the raw length.
      for (size_t at = 0; at < input.size();) {
        if (input.size() - at < 4) return InputError("hadoop-snappy", "truncated block header");
        const uint32_t raw = GetBe32(input, at);
        at += 4;
        const size_t possible =
            OutputBound(input.size() - at, kMaxSnappyRatio, std::numeric_limits<size_t>::max());
        if (raw > possible) {
          return InputError("hadoop-snappy",
                            fmt::format("a block declares {} bytes; the {} bytes left hold at "
                                        "most {}",
                                        raw, input.size() - at, possible));
        }
        for (size_t produced = 0; produced < raw;) {
          if (input.size() - at < 4) return InputError("hadoop-snappy", "truncated chunk header");
          const uint32_t n = GetBe32(input, at);
          at += 4;
          if (input.size() - at < n) return InputError("hadoop-snappy", "truncated chunk");
          const size_t before = out->size();
          if (absl::Status s = AppendSnappyBlock("hadoop-snappy", input.substr(at, n),
                                                 raw - produced, max_output_bytes, out);
              !s.ok()) {
            return s;
          }
          produced += out->size() - before;
          at += n;
        }
      }
      return absl::OkStatus();
    }
  }
  return InvalidArgumentError("CompressionFormat is not a known value.");
}

}  // namespace

absl::Status Decompress(CompressionFormat format, std::string_view input, std::string* out,
                        size_t max_output_bytes) {
  out->clear();
  absl::Status status = DecompressInto(format, input, max_output_bytes, out);
  if (!status.ok()) out->clear();
  return status;
}

}  // namespace riffle::detail
