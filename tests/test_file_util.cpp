// The atomic file write both file stores use: contents replaced whole, no temporary left
// behind, and every error path that can be provoked without privileges reported with the
// operation, the path and errno's text, leaving the target as it was.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/file_util.h"
#include "riffle/status.h"

namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> n{0};
    path = fs::temp_directory_path() /
           ("riffle-file-util-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::remove_all(path);
    fs::create_directories(path / "tmp");
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

constexpr riffle::detail::AtomicWriteOptions kSinkErrors{
    .fsync = false,
    .error_code = absl::StatusCode::kUnavailable,
    .error_name = riffle::kFileSinkIOError};

}  // namespace

TEST_CASE("WriteFileAtomically replaces the target and leaves no temporary", "[file_util]") {
  TempDir dir;
  const std::string target = (dir.path / "object").string();
  for (bool fsync : {false, true}) {
    INFO("fsync " << fsync);
    REQUIRE(riffle::detail::WriteFileAtomically((dir.path / "tmp").string(), "t-1", target, "first",
                                                {.fsync = fsync})
                .ok());
    CHECK(ReadFile(target) == "first");
    REQUIRE(riffle::detail::WriteFileAtomically((dir.path / "tmp").string(), "t-1", target,
                                                "second, longer", {.fsync = fsync})
                .ok());
    CHECK(ReadFile(target) == "second, longer");
    CHECK(fs::is_empty(dir.path / "tmp"));
  }
  // A leftover temporary of the same name (a crash before the rename) is truncated.
  { std::ofstream(dir.path / "tmp" / "t-1") << "a much longer half-written leftover"; }
  REQUIRE(
      riffle::detail::WriteFileAtomically((dir.path / "tmp").string(), "t-1", target, "3").ok());
  CHECK(ReadFile(target) == "3");
  CHECK(fs::is_empty(dir.path / "tmp"));
}

TEST_CASE("WriteFileAtomically reports a failed open with the path and errno's text",
          "[file_util][errors]") {
  TempDir dir;
  const std::string target = (dir.path / "object").string();
  { std::ofstream(target) << "old"; }
  const std::string missing = (dir.path / "missing").string();
  const absl::Status s =
      riffle::detail::WriteFileAtomically(missing, "t-1", target, "new", kSinkErrors);
  CHECK(riffle::HasErrorName(s, riffle::kFileSinkIOError));
  CHECK(s.code() == absl::StatusCode::kUnavailable);
  CHECK(riffle::ErrorMessage(s) == "open " + missing + "/t-1 failed: " + std::strerror(ENOENT));
  CHECK(ReadFile(target) == "old");
  // The default names the error InternalFailure.
  CHECK(riffle::HasErrorName(riffle::detail::WriteFileAtomically(missing, "t", target, "x"),
                             riffle::kInternalFailure));
}

TEST_CASE("WriteFileAtomically reports a failed write and removes the temporary",
          "[file_util][errors]") {
  TempDir dir;
  const std::string target = (dir.path / "object").string();
  { std::ofstream(target) << "old"; }
  // A file size limit makes write() fail with EFBIG (SIGXFSZ ignored), as a full disk
  // would with ENOSPC.
  struct rlimit old_limit;
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
  struct sigaction ignore = {}, old_action;
  ignore.sa_handler = SIG_IGN;
  REQUIRE(::sigaction(SIGXFSZ, &ignore, &old_action) == 0);
  struct rlimit limit = old_limit;
  limit.rlim_cur = 1024;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &limit) == 0);
  const absl::Status s = riffle::detail::WriteFileAtomically(
      (dir.path / "tmp").string(), "t-1", target, std::string(4096, 'x'), kSinkErrors);
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &old_limit) == 0);
  REQUIRE(::sigaction(SIGXFSZ, &old_action, nullptr) == 0);

  CHECK(riffle::HasErrorName(s, riffle::kFileSinkIOError));
  CHECK(riffle::ErrorMessage(s) ==
        "write " + (dir.path / "tmp" / "t-1").string() + " failed: " + std::strerror(EFBIG));
  CHECK(ReadFile(target) == "old");
  CHECK(fs::is_empty(dir.path / "tmp"));
}

TEST_CASE("WriteFileAtomically reports a failed rename and removes the temporary",
          "[file_util][errors]") {
  TempDir dir;
  const fs::path target = dir.path / "object";
  fs::create_directories(target / "child");  // a non-empty directory cannot be replaced
  const absl::Status s = riffle::detail::WriteFileAtomically(
      (dir.path / "tmp").string(), "t-1", target.string(), "new", {.fsync = true});
  CHECK(riffle::HasErrorName(s, riffle::kInternalFailure));
  const std::string message = riffle::ErrorMessage(s);
  INFO(message);
  CHECK(Contains(message, "rename " + (dir.path / "tmp" / "t-1").string() + " to " +
                              target.string() + " failed: "));
  CHECK(Contains(message, std::strerror(EISDIR)));
  CHECK(fs::is_directory(target / "child"));
  CHECK(fs::is_empty(dir.path / "tmp"));
}
