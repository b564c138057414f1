// The account's buckets: S3's names and rules, ListObjectsV2 pagination, memory and
// directory buckets, and faults on writes.
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "account_test_helpers.h"
#include "fmt/format.h"
#include "riffle/account.h"
#include "riffle/s3.h"

using account_test::Error;
using account_test::ErrorOf;
using account_test::MakeAccount;
using riffle::ManualClock;

namespace {

std::vector<std::string> Keys(const riffle::ListObjectsV2Output& out) {
  std::vector<std::string> keys;
  for (const auto& o : out.contents) keys.push_back(o.key);
  return keys;
}

std::vector<std::string> Prefixes(const riffle::ListObjectsV2Output& out) {
  std::vector<std::string> p;
  for (const auto& c : out.common_prefixes) p.push_back(c.prefix);
  return p;
}

void Put(riffle::S3& s3, std::string_view bucket, std::string_view key, std::string_view body) {
  REQUIRE(s3.PutObject({.bucket = bucket, .key = key, .body = body}).ok());
}

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(std::string_view name)
      : path(std::filesystem::temp_directory_path() /
             fmt::format("riffle-test-s3-{}-{}", name, ::getpid())) {
    std::filesystem::remove_all(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

TEST_CASE("CreateBucket: S3's naming rules and BucketAlreadyOwnedByYou", "[account][s3]") {
  ManualClock clock;
  // In us-east-1 (the default region), creating a bucket the account owns succeeds again.
  auto virginia = MakeAccount(clock);
  REQUIRE(virginia->s3().CreateBucket({.bucket = "deliveries"}).ok());
  REQUIRE(virginia->s3().PutObject({.bucket = "deliveries", .key = "k", .body = "kept"}).ok());
  auto again = virginia->s3().CreateBucket({.bucket = "deliveries"});
  REQUIRE(again.ok());
  CHECK(again->location == "/deliveries");
  CHECK(virginia->s3().GetObject({.bucket = "deliveries", .key = "k"})->body == "kept");
  // Elsewhere it is BucketAlreadyOwnedByYou.
  auto account = MakeAccount(clock, false, {.region = "eu-west-1"});
  riffle::S3& s3 = account->s3();
  auto created = s3.CreateBucket({.bucket = "deliveries"});
  REQUIRE(created.ok());
  CHECK(created->location == "/deliveries");
  CHECK(ErrorOf(s3.CreateBucket({.bucket = "deliveries"})) ==
        Error{riffle::kBucketAlreadyOwnedByYou,
              "Your previous request to create the named bucket succeeded and you already own "
              "it."});
  for (std::string_view bad :
       {"ab", "Upper", "-start", "end-", "a..b", "192.168.5.4", "xn--name", "sthree-x",
        "name-s3alias", "under_score",
        "a23456789012345678901234567890123456789012345678901234567890123x"}) {
    INFO(bad);
    CHECK(ErrorOf(s3.CreateBucket({.bucket = bad})) ==
          Error{riffle::kInvalidBucketName, "The specified bucket is not valid."});
  }
  for (std::string_view good : {"abc", "my.bucket-1", "192.168.5.x"}) {
    INFO(good);
    CHECK(s3.CreateBucket({.bucket = good}).ok());
  }
  auto list = s3.ListBuckets();
  REQUIRE(list.ok());
  REQUIRE(list->buckets.size() == 4);
  CHECK(list->buckets[0].name == "192.168.5.x");
  CHECK(list->buckets[3].name == "my.bucket-1");
  CHECK(list->buckets[0].creation_date == clock.Now());
}

TEST_CASE("PutObject, GetObject, HeadObject, DeleteObject", "[account][s3]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::S3& s3 = account->s3();
  REQUIRE(s3.CreateBucket({.bucket = "bk1"}).ok());
  auto put = s3.PutObject({.bucket = "bk1", .key = "a/hello.txt", .body = "hello"});
  REQUIRE(put.ok());
  // ETag: the quoted hex MD5 of the content (RFC 1321: MD5("hello")).
  CHECK(put->etag == "\"5d41402abc4b2a76b9719d911017c592\"");
  const absl::Time written = clock.Now();
  clock.Advance(absl::Seconds(5));

  auto head = s3.HeadObject({.bucket = "bk1", .key = "a/hello.txt"});
  REQUIRE(head.ok());
  CHECK(head->content_length == 5);
  CHECK(head->etag == "\"5d41402abc4b2a76b9719d911017c592\"");
  CHECK(head->last_modified == written);
  // LastModified is kept to the second, as S3 keeps it.
  clock.Advance(absl::Milliseconds(1500));
  REQUIRE(s3.PutObject({.bucket = "bk1", .key = "later", .body = "x"}).ok());
  CHECK(s3.HeadObject({.bucket = "bk1", .key = "later"})->last_modified ==
        absl::FromUnixSeconds(absl::ToUnixSeconds(clock.Now())));
  REQUIRE(s3.DeleteObject({.bucket = "bk1", .key = "later"}).ok());
  auto get = s3.GetObject({.bucket = "bk1", .key = "a/hello.txt"});
  REQUIRE(get.ok());
  CHECK(get->body == "hello");
  CHECK(get->content_length == 5);
  CHECK(get->etag == head->etag);

  const auto no_key = s3.GetObject({.bucket = "bk1", .key = "nope"});
  CHECK(ErrorOf(no_key) == Error{riffle::kNoSuchKey, "The specified key does not exist."});
  // The key beside the message, as the service's error response has it.
  CHECK(no_key.status().GetPayload(std::string(riffle::kErrorFieldPayloadPrefix) + "Key") ==
        absl::Cord("nope"));
  CHECK(riffle::IsNoSuchKey(s3.HeadObject({.bucket = "bk1", .key = "nope"}).status()));
  const auto no_bucket = s3.GetObject({.bucket = "bk2", .key = "a"});
  CHECK(ErrorOf(no_bucket) == Error{riffle::kNoSuchBucket, "The specified bucket does not exist"});
  CHECK(no_bucket.status().GetPayload(std::string(riffle::kErrorFieldPayloadPrefix) +
                                      "BucketName") == absl::Cord("bk2"));
  CHECK(riffle::IsNoSuchBucket(s3.PutObject({.bucket = "bk2", .key = "a", .body = ""}).status()));
  CHECK(riffle::IsNoSuchBucket(s3.DeleteObject({.bucket = "bk2", .key = "a"})));
  CHECK(ErrorOf(s3.PutObject({.bucket = "bk1", .key = "", .body = "x"})).name ==
        riffle::kS3InvalidArgument);
  CHECK(ErrorOf(s3.PutObject({.bucket = "bk1", .key = std::string(1025, 'k'), .body = "x"})) ==
        Error{riffle::kKeyTooLongError, "Your key is too long."});
  CHECK(s3.PutObject({.bucket = "bk1", .key = std::string(1024, 'k'), .body = "x"}).ok());
  REQUIRE(s3.DeleteObject({.bucket = "bk1", .key = std::string(1024, 'k')}).ok());

  // Overwrite, then delete (twice: a missing key is not an error).
  Put(s3, "bk1", "a/hello.txt", "");
  CHECK(s3.HeadObject({.bucket = "bk1", .key = "a/hello.txt"})->etag ==
        "\"d41d8cd98f00b204e9800998ecf8427e\"");
  REQUIRE(s3.DeleteObject({.bucket = "bk1", .key = "a/hello.txt"}).ok());
  REQUIRE(s3.DeleteObject({.bucket = "bk1", .key = "a/hello.txt"}).ok());
  CHECK(riffle::IsNoSuchKey(s3.GetObject({.bucket = "bk1", .key = "a/hello.txt"}).status()));
  CHECK(s3.ListObjectsV2({.bucket = "bk1"})->key_count == 0);
}

TEST_CASE("ListObjectsV2: order, MaxKeys, continuation tokens, StartAfter", "[account][s3]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::S3& s3 = account->s3();
  REQUIRE(s3.CreateBucket({.bucket = "bk1"}).ok());
  // UTF-8 binary order: 'Z' < 'a' < "é" (0xC3 0xA9).
  for (std::string_view k : {"b", "a", "Z", "\xc3\xa9", "a/1", "a0"}) Put(s3, "bk1", k, "x");
  auto all = s3.ListObjectsV2({.bucket = "bk1"});
  REQUIRE(all.ok());
  CHECK(Keys(*all) == std::vector<std::string>{"Z", "a", "a/1", "a0", "b", "\xc3\xa9"});
  CHECK(all->key_count == 6);
  CHECK(all->max_keys == 1000);
  CHECK_FALSE(all->is_truncated);
  CHECK(all->next_continuation_token.empty());
  CHECK(all->contents[0].size == 1);
  CHECK(all->contents[0].etag == "\"9dd4e461268c8034f5c8564e155c67a6\"");  // MD5("x")
  CHECK(all->contents[0].last_modified == clock.Now());

  // Pages of two, by token.
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = s3.ListObjectsV2({.bucket = "bk1", .max_keys = 2, .continuation_token = token});
    REQUIRE(page.ok());
    CHECK(page->key_count <= 2);
    CHECK(page->continuation_token == token);
    for (auto& k : Keys(*page)) seen.push_back(k);
    CHECK(page->is_truncated == !page->next_continuation_token.empty());
    token = page->next_continuation_token;
    ++pages;
  } while (!token.empty());
  CHECK(pages == 3);
  CHECK(seen == Keys(*all));

  auto after = s3.ListObjectsV2({.bucket = "bk1", .start_after = "a0"});
  CHECK(Keys(*after) == std::vector<std::string>{"b", "\xc3\xa9"});
  CHECK(after->start_after == "a0");
  auto prefixed = s3.ListObjectsV2({.bucket = "bk1", .prefix = "a"});
  CHECK(Keys(*prefixed) == std::vector<std::string>{"a", "a/1", "a0"});
  auto none = s3.ListObjectsV2({.bucket = "bk1", .max_keys = 0});
  CHECK(none->key_count == 0);
  CHECK(none->contents.empty());

  CHECK(ErrorOf(s3.ListObjectsV2({.bucket = "bk1", .continuation_token = "forged"})) ==
        Error{riffle::kS3InvalidArgument, "The continuation token provided is incorrect"});
  // A token of another bucket is refused too.
  REQUIRE(s3.CreateBucket({.bucket = "bk2"}).ok());
  auto first = s3.ListObjectsV2({.bucket = "bk1", .max_keys = 1});
  CHECK(ErrorOf(s3.ListObjectsV2(
                    {.bucket = "bk2", .continuation_token = first->next_continuation_token}))
            .name == riffle::kS3InvalidArgument);
  CHECK(ErrorOf(s3.ListObjectsV2({.bucket = "bk1", .max_keys = -1})).name ==
        riffle::kS3InvalidArgument);
  CHECK(riffle::IsNoSuchBucket(s3.ListObjectsV2({.bucket = "bk3"}).status()));
}

TEST_CASE("ListObjectsV2: Delimiter rolls keys up into CommonPrefixes", "[account][s3]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::S3& s3 = account->s3();
  REQUIRE(s3.CreateBucket({.bucket = "bk1"}).ok());
  for (std::string_view k : {"2026/01/01/00/x", "2026/01/01/01/y", "2026/01/02/00/z", "2026/readme",
                             "errors/processing-failed/2026/a", "top"}) {
    Put(s3, "bk1", k, "1");
  }
  auto root = s3.ListObjectsV2({.bucket = "bk1", .delimiter = "/"});
  CHECK(Prefixes(*root) == std::vector<std::string>{"2026/", "errors/"});
  CHECK(Keys(*root) == std::vector<std::string>{"top"});
  CHECK(root->key_count == 3);
  auto days = s3.ListObjectsV2({.bucket = "bk1", .prefix = "2026/01/", .delimiter = "/"});
  CHECK(Prefixes(*days) == std::vector<std::string>{"2026/01/01/", "2026/01/02/"});
  CHECK(Keys(*days).empty());
  auto year = s3.ListObjectsV2({.bucket = "bk1", .prefix = "2026/", .delimiter = "/"});
  CHECK(Prefixes(*year) == std::vector<std::string>{"2026/01/"});
  CHECK(Keys(*year) == std::vector<std::string>{"2026/readme"});

  // One entry per page: a common prefix counts as one, and the next page skips its keys.
  std::vector<std::string> entries;
  std::string token;
  do {
    auto page = s3.ListObjectsV2(
        {.bucket = "bk1", .delimiter = "/", .max_keys = 1, .continuation_token = token});
    REQUIRE(page.ok());
    CHECK(page->key_count == 1);
    for (auto& p : Prefixes(*page)) entries.push_back(p);
    for (auto& k : Keys(*page)) entries.push_back(k);
    token = page->next_continuation_token;
  } while (!token.empty());
  CHECK(entries == std::vector<std::string>{"2026/", "errors/", "top"});

  // StartAfter: a common prefix at or before it is not listed (paging by hand with the last
  // prefix seen as StartAfter moves on).
  for (std::string_view start : {"2026/", "2026/01/01/00/x", "2026/zzz"}) {
    INFO(start);
    auto page =
        s3.ListObjectsV2({.bucket = "bk1", .delimiter = "/", .max_keys = 1, .start_after = start});
    REQUIRE(page.ok());
    CHECK(Prefixes(*page) == std::vector<std::string>{"errors/"});
    CHECK(page->is_truncated);
  }
  auto last = s3.ListObjectsV2({.bucket = "bk1", .delimiter = "/", .start_after = "errors/"});
  CHECK(Prefixes(*last).empty());
  CHECK(Keys(*last) == std::vector<std::string>{"top"});
  CHECK_FALSE(last->is_truncated);
}

TEST_CASE("A directory bucket under concurrent puts: a body always comes with its own ETag",
          "[account][s3][stress]") {
  TempDir dir("race");
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::S3& s3 = account->s3();
  REQUIRE(s3.CreateBucket({.bucket = "files", .directory = dir.path.string()}).ok());
  // Bodies of different sizes, and the ETag of each.
  std::map<std::string, std::string> etag_of;
  for (int i = 0; i < 4; ++i) {
    const std::string body(static_cast<size_t>(1000 * (i + 1)), static_cast<char>('a' + i));
    auto put = s3.PutObject({.bucket = "files", .key = fmt::format("b{}", i), .body = body});
    REQUIRE(put.ok());
    etag_of[body] = put->etag;
  }
  std::vector<std::string> bodies;
  for (const auto& [body, etag] : etag_of) bodies.push_back(body);
  REQUIRE(s3.PutObject({.bucket = "files", .key = "hot", .body = bodies[0]}).ok());
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < 150; ++i) {
        (void)s3.PutObject({.bucket = "files", .key = "hot", .body = bodies[(i + w) % 4]});
      }
    });
  }
  int mismatched = 0, reads = 0;
  std::thread reader([&] {
    while (!stop.load()) {
      auto got = s3.GetObject({.bucket = "files", .key = "hot"});
      if (!got.ok()) continue;
      ++reads;
      auto it = etag_of.find(got->body);
      if (it == etag_of.end() || it->second != got->etag ||
          got->content_length != static_cast<int64_t>(got->body.size())) {
        ++mismatched;
      }
    }
  });
  for (std::thread& t : writers) t.join();
  stop = true;
  reader.join();
  CHECK(reads > 0);
  CHECK(mismatched == 0);
}

TEST_CASE("A bucket backed by a directory: FileSink's layout, existing files listed",
          "[account][s3]") {
  TempDir dir("dir");
  std::filesystem::create_directories(dir.path / "old");
  std::ofstream(dir.path / "old" / "file.txt") << "hello";
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::S3& s3 = account->s3();
  REQUIRE(s3.CreateBucket({.bucket = "files", .directory = dir.path.string()}).ok());
  auto list = s3.ListObjectsV2({.bucket = "files"});
  REQUIRE(list.ok());
  CHECK(Keys(*list) == std::vector<std::string>{"old/file.txt"});
  CHECK(list->contents[0].etag == "\"5d41402abc4b2a76b9719d911017c592\"");

  Put(s3, "files", "2026/01/01/00/obj", "data");
  std::ifstream f(dir.path / "2026" / "01" / "01" / "00" / "obj");
  std::string on_disk;
  std::getline(f, on_disk);
  CHECK(on_disk == "data");
  CHECK(s3.GetObject({.bucket = "files", .key = "2026/01/01/00/obj"})->body == "data");
  CHECK(Keys(*s3.ListObjectsV2({.bucket = "files"})) ==
        std::vector<std::string>{"2026/01/01/00/obj", "old/file.txt"});
  // Keys a directory cannot hold are refused, not written outside it.
  const std::string long_segment = "logs/" + std::string(256, 'x');  // a file name has 255
  for (std::string_view bad :
       {"../escape", "/abs", "a//b", "a/./b", ".riffle-tmp/x", "dir/", long_segment.c_str()}) {
    INFO(bad);
    CHECK(ErrorOf(s3.PutObject({.bucket = "files", .key = bad, .body = "x"})).name ==
          riffle::kS3InvalidArgument);
  }
  // Empty directories where a key's file goes (a process killed between making a key's
  // directories and renaming its file in) do not block the key; a directory with a file
  // in it does.
  std::filesystem::create_directories(dir.path / "crashed" / "left" / "over");
  CHECK(s3.PutObject({.bucket = "files", .key = "crashed", .body = "z"}).ok());
  CHECK(s3.GetObject({.bucket = "files", .key = "crashed"})->body == "z");
  std::filesystem::create_directories(dir.path / "held");
  std::ofstream(dir.path / "held" / "by-another-writer") << "x";
  CHECK_FALSE(s3.PutObject({.bucket = "files", .key = "held", .body = "z"}).ok());
  CHECK(std::filesystem::exists(dir.path / "held" / "by-another-writer"));
  // A file another writer put where a key needs a directory: the failed put leaves it.
  std::ofstream(dir.path / "report") << "theirs";
  CHECK_FALSE(s3.PutObject({.bucket = "files", .key = "report/part-1", .body = "z"}).ok());
  CHECK(std::filesystem::is_regular_file(dir.path / "report"));
  // A link where a key's file goes: nothing it points to is touched.
  TempDir outside("outside");
  std::filesystem::create_directories(outside.path / "empty" / "dirs");
  std::filesystem::create_directory_symlink(outside.path, dir.path / "link");
  (void)s3.PutObject({.bucket = "files", .key = "link", .body = "z"});
  CHECK(std::filesystem::is_directory(outside.path / "empty" / "dirs"));
  // Nothing of a refused key stays behind: "logs" may still be a file.
  CHECK(s3.PutObject({.bucket = "files", .key = "logs", .body = "x"}).ok());
  REQUIRE(s3.DeleteObject({.bucket = "files", .key = "logs"}).ok());
  CHECK(
      s3.PutObject({.bucket = "files", .key = "logs/" + std::string(255, 'x'), .body = "x"}).ok());
  // Keys S3 could hold side by side but a directory cannot: a file where a directory is
  // needed, a directory where a file would go.
  Put(s3, "files", "top", "file");
  auto under_file = s3.PutObject({.bucket = "files", .key = "top/x", .body = "x"});
  CHECK(ErrorOf(under_file).name == riffle::kS3InvalidArgument);
  CHECK(ErrorOf(under_file).message ==
        "Key 'top/x' cannot be stored in the directory of bucket files: object 'top' is a file "
        "where the key needs a directory.");
  auto on_directory = s3.PutObject({.bucket = "files", .key = "2026/01", .body = "x"});
  CHECK(ErrorOf(on_directory).name == riffle::kS3InvalidArgument);
  CHECK(ErrorOf(on_directory).message ==
        "Key '2026/01' cannot be stored in the directory of bucket files: it is the directory "
        "of object '2026/01/01/00/obj'.");
  CHECK(s3.PutObject({.bucket = "files", .key = "2026/010", .body = "x"}).ok());  // a sibling
  CHECK(s3.GetObject({.bucket = "files", .key = "top"})->body == "file");
  REQUIRE(s3.DeleteObject({.bucket = "files", .key = "old/file.txt"}).ok());
  CHECK_FALSE(std::filesystem::exists(dir.path / "old" / "file.txt"));
  // Keys are flat: once "a/b/c" is gone, "a" and "a/b" may be files (the emptied
  // directories go with it).
  Put(s3, "files", "a/b/c", "deep");
  REQUIRE(s3.DeleteObject({.bucket = "files", .key = "a/b/c"}).ok());
  CHECK(s3.PutObject({.bucket = "files", .key = "a/b", .body = "x"}).ok());
  REQUIRE(s3.DeleteObject({.bucket = "files", .key = "a/b"}).ok());
  CHECK(s3.PutObject({.bucket = "files", .key = "a", .body = "y"}).ok());
  CHECK(s3.GetObject({.bucket = "files", .key = "a"})->body == "y");
  CHECK(std::filesystem::exists(dir.path));
  // Two puts that cannot both be files, at once: one is refused with the layout error.
  for (int round = 0; round < 50; ++round) {
    const std::string file = fmt::format("race{}", round);
    const std::string under = file + "/y";
    absl::Status s1, s2;
    std::thread t1(
        [&] { s1 = s3.PutObject({.bucket = "files", .key = file, .body = "1"}).status(); });
    std::thread t2(
        [&] { s2 = s3.PutObject({.bucket = "files", .key = under, .body = "2"}).status(); });
    t1.join();
    t2.join();
    CHECK(s1.ok() != s2.ok());
    for (const absl::Status& s : {s1, s2}) {
      if (!s.ok()) CHECK(riffle::ErrorName(s) == riffle::kS3InvalidArgument);
    }
  }
}

TEST_CASE("The fault plan fails a bucket's writes and reads by operation", "[account][s3]") {
  ManualClock clock;
  auto account = MakeAccount(clock);
  riffle::S3& s3 = account->s3();
  REQUIRE(s3.CreateBucket({.bucket = "bk1"}).ok());
  REQUIRE(s3.CreateBucket({.bucket = "bk2"}).ok());
  account->faults().Add(
      riffle::FaultRule::FailNext("PutObject", 2, riffle::kInternalError).OnResource("bk1"));
  account->faults().Add(riffle::FaultRule::FailNext("GetObject", 1, riffle::kSlowDown)
                            .WithMessage("Please reduce your request rate."));
  CHECK(ErrorOf(s3.PutObject({.bucket = "bk1", .key = "k", .body = "v"})).name ==
        riffle::kInternalError);
  CHECK(s3.PutObject({.bucket = "bk2", .key = "k", .body = "v"}).ok());  // another bucket
  CHECK_FALSE(s3.PutObject({.bucket = "bk1", .key = "k", .body = "v"}).ok());
  CHECK(s3.PutObject({.bucket = "bk1", .key = "k", .body = "v"}).ok());
  CHECK(ErrorOf(s3.GetObject({.bucket = "bk1", .key = "k"})) ==
        Error{riffle::kSlowDown, "Please reduce your request rate."});
  CHECK(s3.GetObject({.bucket = "bk1", .key = "k"})->body == "v");
  CHECK(account->faults().Injected("PutObject") == 2);
}
