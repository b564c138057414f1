#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

// The names in <dir>/.riffle-tmp that are not lock files, sorted.
std::vector<std::string> TempFiles(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir / ".riffle-tmp")) {
    const std::string name = e.path().filename().string();
    if (!name.ends_with(".lock")) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> Sorted(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  return names;
}

// The owner names ("<pid>-<random>") whose lock files are in <dir>/.riffle-tmp.
std::vector<std::string> Owners(const std::filesystem::path& dir, std::string_view pid_prefix) {
  std::vector<std::string> owners;
  for (const auto& e : std::filesystem::directory_iterator(dir / ".riffle-tmp")) {
    const std::string name = e.path().filename().string();
    if (name.starts_with(pid_prefix) && name.ends_with(".lock")) {
      owners.push_back(name.substr(0, name.size() - 5));
    }
  }
  return owners;
}

}  // namespace

TEST_CASE("FileSink writes objects as files under their keys", "[delivery][sinks]") {
  TempDir dir;
  for (bool fsync : {false, true}) {
    auto sink = riffle::FileSink::Create({dir.path.string(), fsync});
    REQUIRE(sink.ok());
    REQUIRE((*sink)->PutObject("2026/01/01/00/a-1", "hello").ok());
    REQUIRE((*sink)->PutObject("2026/01/01/00/a-1", "replaced").ok());
    CHECK(ReadFile(dir.path / "2026/01/01/00/a-1") == "replaced");
    // Directories made by the put (with fsync, each one's entry is synced in its parent).
    const std::string fresh = fsync ? "synced/x/y/b" : "plain/x/y/b";
    REQUIRE((*sink)->PutObject(fresh, "made").ok());
    CHECK(ReadFile(dir.path / fresh) == "made");
    // Nothing is left in the temporary area but lock files.
    CHECK(TempFiles(dir.path).empty());
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
  CHECK(TempFiles(dir.path).empty());
  CHECK(ReadFile(dir.path / "a/b/c") == "x");
}

TEST_CASE("FileSink::Create removes the temporaries of crashed writers, and only those",
          "[sinks][regression]") {
  TempDir dir;
  const std::filesystem::path tmp = dir.path / ".riffle-tmp";
  auto live = riffle::FileSink::Create({dir.path.string(), false});
  REQUIRE(live.ok());
  const std::vector<std::string> live_owners = Owners(dir.path, std::to_string(::getpid()) + "-");
  REQUIRE(live_owners.size() == 1);
  // A write in flight in a live sink, and files the sink does not recognise.
  { std::ofstream(tmp / (live_owners[0] + "-99")) << "in flight"; }
  { std::ofstream(tmp / "notes.txt") << "mine"; }
  { std::ofstream(tmp / "4242-17") << "an old-style name"; }

  // A writer that crashes in the middle of an object: its temporary stays behind.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    auto sink = riffle::FileSink::Create({dir.path.string(), false});
    if (!sink.ok() || !(*sink)->PutObject("done/object", "complete").ok()) ::_exit(2);
    const std::vector<std::string> own = Owners(dir.path, std::to_string(::getpid()) + "-");
    if (own.size() != 1) ::_exit(3);
    { std::ofstream(tmp / (own[0] + "-1")) << "half an obj"; }
    ::_exit(0);  // no destructor runs: the lock file stays, the kernel drops the lock
  }
  int wait_status = 0;
  REQUIRE(::waitpid(child, &wait_status, 0) == child);
  REQUIRE(WIFEXITED(wait_status));
  REQUIRE(WEXITSTATUS(wait_status) == 0);
  const std::vector<std::string> dead_owners = Owners(dir.path, std::to_string(child) + "-");
  REQUIRE(dead_owners.size() == 1);
  CHECK(TempFiles(dir.path) ==
        Sorted({"4242-17", dead_owners[0] + "-1", live_owners[0] + "-99", "notes.txt"}));

  auto next = riffle::FileSink::Create({dir.path.string(), false});
  REQUIRE(next.ok());
  CHECK(TempFiles(dir.path) == Sorted({"4242-17", live_owners[0] + "-99", "notes.txt"}));
  CHECK(Owners(dir.path, std::to_string(child) + "-").empty());
  CHECK(Owners(dir.path, std::to_string(::getpid()) + "-").size() == 2);  // live and next
  CHECK(ReadFile(dir.path / "done/object") == "complete");

  // A sink's lock file goes with it.
  live->reset();
  CHECK(Owners(dir.path, std::to_string(::getpid()) + "-").size() == 1);
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
