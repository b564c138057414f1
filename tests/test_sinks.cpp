#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "riffle/delivery_stream.h"
#include "riffle/sink.h"
#include "support/alloc_counter.h"

namespace {

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static std::atomic<int> n{0};
    path = std::filesystem::temp_directory_path() /
           ("riffle-sink-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    std::filesystem::remove_all(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("FileSink writes objects as files under their keys", "[delivery][sinks]") {
  TempDir dir;
  for (bool fsync : {false, true}) {
    auto sink = riffle::FileSink::Create({dir.path.string(), fsync});
    REQUIRE(sink.ok());
    REQUIRE((*sink)->PutObject("2026/01/01/00/a-1", "hello").ok());
    REQUIRE((*sink)->PutObject("2026/01/01/00/a-1", "replaced").ok());
    CHECK(ReadFile(dir.path / "2026/01/01/00/a-1") == "replaced");
    // Nothing is left in the temporary area.
    CHECK(std::filesystem::is_empty(dir.path / ".riffle-tmp"));
  }
}

TEST_CASE("FileSink refuses keys that would leave its directory", "[delivery][sinks]") {
  TempDir dir;
  auto sink = riffle::FileSink::Create({dir.path.string(), false});
  REQUIRE(sink.ok());
  for (std::string_view key : {"", "/etc/passwd", "a/../../x", "./x", ".riffle-tmp/x", "a/"}) {
    const absl::Status s = (*sink)->PutObject(key, "x");
    INFO(key);
    CHECK(riffle::HasErrorName(s, riffle::kInvalidArgumentException));
  }
  CHECK(riffle::ErrorMessage((*sink)->PutObject("a/../../x", "x")) ==
        "Key 'a/../../x' has a '..' segment; FileSink keys must stay inside the directory.");
  CHECK(riffle::HasErrorName(riffle::FileSink::Create({"", false}).status(),
                             riffle::kInvalidArgumentException));
}

TEST_CASE("FileSink I/O failures are reported with a retryable status", "[delivery][sinks]") {
  TempDir dir;
  auto sink = riffle::FileSink::Create({dir.path.string(), false});
  REQUIRE(sink.ok());
  {
    std::ofstream blocker(dir.path / "file");  // a file where a directory is needed
  }
  const absl::Status s = (*sink)->PutObject("file/child", "x");
  CHECK(riffle::HasErrorName(s, riffle::kFileSinkIOError));
  CHECK(s.code() == absl::StatusCode::kUnavailable);

  // An object where a key prefix already holds objects: the rename fails, is reported with
  // both paths and errno's text, and leaves no temporary behind.
  REQUIRE((*sink)->PutObject("a/b/c", "x").ok());
  const absl::Status rename = (*sink)->PutObject("a/b", "y");
  CHECK(riffle::HasErrorName(rename, riffle::kFileSinkIOError));
  CHECK(rename.code() == absl::StatusCode::kUnavailable);
  const std::string message = riffle::ErrorMessage(rename);
  INFO(message);
  CHECK(message.find("rename " + (dir.path / ".riffle-tmp").string()) == 0);
  CHECK(message.find(" to " + (dir.path / "a/b").string() + " failed: " + std::strerror(EISDIR)) !=
        std::string::npos);
  CHECK(std::filesystem::is_empty(dir.path / ".riffle-tmp"));
  CHECK(ReadFile(dir.path / "a/b/c") == "x");
}

TEST_CASE("A reader never sees half an object", "[delivery][sinks][stress]") {
  TempDir dir;
  auto sink = riffle::FileSink::Create({dir.path.string(), false});
  REQUIRE(sink.ok());
  const std::string a(256 * 1024, 'a');
  const std::string b(256 * 1024, 'b');
  std::atomic<bool> done{false};
  std::atomic<int> write_failures{0};
  std::thread writer([&] {  // Catch2 assertions are not thread-safe: count, check later
    for (int i = 0; i < 200 / riffle_test::StressDivisor(); ++i) {
      if (!(*sink)->PutObject("k", i % 2 ? a : b).ok()) write_failures.fetch_add(1);
    }
    done = true;
  });
  int reads = 0;
  while (!done.load()) {
    const std::string got = ReadFile(dir.path / "k");
    if (got.empty()) continue;  // not yet created
    CHECK((got == a || got == b));
    ++reads;
  }
  writer.join();
  CHECK(write_failures.load() == 0);
  CHECK(reads > 0);
}

TEST_CASE("MemorySink and CallbackSink", "[delivery][sinks]") {
  riffle::MemorySink m;
  REQUIRE(m.PutObject("b", "2").ok());
  REQUIRE(m.PutObject("a", "1").ok());
  REQUIRE(m.PutObject("a", "3").ok());
  CHECK(m.Keys() == std::vector<std::string>{"a", "b"});
  CHECK(m.Get("a") == "3");
  CHECK_FALSE(m.Get("c").has_value());
  CHECK(m.put_count() == 3);
  int calls = 0;
  riffle::CallbackSink c([&](std::string_view key, std::string_view data) {
    ++calls;
    return key == data ? absl::OkStatus() : absl::InvalidArgumentError("differ");
  });
  CHECK(c.PutObject("x", "x").ok());
  CHECK_FALSE(c.PutObject("x", "y").ok());
  CHECK(calls == 2);
}

TEST_CASE("A DeliveryStream writes gzip objects into a FileSink", "[delivery][sinks]") {
  TempDir dir;
  auto sink = riffle::FileSink::Create({dir.path.string(), false});
  REQUIRE(sink.ok());
  riffle::ManualClock clock;
  riffle::DeliveryStreamOptions o;
  o.delivery_stream_name = "files";
  o.sink = sink->get();
  o.clock = &clock;
  o.compression = riffle::CompressionFormat::kGzip;
  auto ds = riffle::DeliveryStream::Create(std::move(o));
  REQUIRE(ds.ok());
  REQUIRE((*ds)->PutRecord("a\n").ok());
  REQUIRE((*ds)->PutRecord("b\n").ok());
  REQUIRE((*ds)->Close().ok());
  int objects = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path / "2026")) {
    if (!entry.is_regular_file()) continue;
    ++objects;
    CHECK(entry.path().extension() == ".gz");
    const std::string data = ReadFile(entry.path());
    CHECK(data.substr(0, 2) == "\x1f\x8b");  // gzip magic
  }
  CHECK(objects == 1);
}
