// Object keys: FileSink::PutObject on a scratch directory, against the key rules FileSink
// documents (sink.h). A key that would leave the directory (absolute, "." or ".."
// segments, NUL bytes) or enter its temporary area is InvalidArgumentException; any other
// key is written under the directory (or refused by the file system with FileSink.IOError)
// and reads back; no temporary is ever left behind.
//
// Input: up to 4 keys, one per line; each object's data is its key.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fuzz_support.h"
#include "riffle/sink.h"

namespace {

namespace fs = std::filesystem;
using riffle_fuzz::Printable;

struct Scratch {
  fs::path root;  // holds only `dir`: anything else here escaped
  fs::path dir;   // the sink's directory
  std::unique_ptr<riffle::FileSink> sink;
};

Scratch& GetScratch() {
  static Scratch* s = [] {
    auto* scratch = new Scratch;
    scratch->root = riffle_fuzz::MakeScratchDirectory("sink");
    scratch->dir = scratch->root / "bucket";
    scratch->sink = std::move(riffle::FileSink::Create({scratch->dir.string(), false})).value();
    return scratch;
  }();
  return *s;
}

// sink.h's rules: 1..1024 bytes, relative, no NUL, no "." or ".." segment, not under
// .riffle-tmp, not ending with '/'.
bool ReferenceKeyValid(std::string_view key) {
  if (key.empty() || key.size() > 1024 || key[0] == '/' || key.back() == '/' ||
      key.find('\0') != std::string_view::npos) {
    return false;
  }
  size_t start = 0;
  for (bool first = true;; first = false) {
    const size_t end = key.find('/', start);
    const std::string_view segment =
        key.substr(start, end == std::string_view::npos ? key.size() - start : end - start);
    if (segment == "." || segment == ".." || (first && segment == ".riffle-tmp")) return false;
    if (end == std::string_view::npos) return true;
    start = end + 1;
  }
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Scratch& s = GetScratch();
  std::string_view text = riffle_fuzz::AsText(data, size);
  for (int n = 0; n < 4 && !text.empty(); ++n) {
    const size_t end = text.find('\n');
    const std::string_view key = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);

    const absl::Status put = s.sink->PutObject(key, key);
    if (!ReferenceKeyValid(key)) {
      FUZZ_CHECK(riffle::IsInvalidArgumentException(put),
                 fmt::format("key '{}': {}", Printable(key),
                             put.ok() ? "OK" : riffle_fuzz::Describe(put)));
      continue;
    }
    if (!put.ok()) {
      // The file system may refuse (a name too long, a file where a directory must be).
      FUZZ_CHECK(riffle::HasErrorName(put, riffle::kFileSinkIOError), riffle_fuzz::Describe(put));
      continue;
    }
    const fs::path target = s.dir / fs::path(std::string(key));
    FUZZ_CHECK(ReadFile(target) == key,
               fmt::format("object '{}' does not read back", Printable(key)));
    const fs::path canonical = fs::weakly_canonical(target);
    const std::string inside = fs::weakly_canonical(s.dir).string() + "/";
    FUZZ_CHECK(canonical.string().starts_with(inside) &&
                   !canonical.string().starts_with(inside + ".riffle-tmp/"),
               fmt::format("object '{}' was written to {}", Printable(key), canonical.string()));
  }

  // Nothing outside the directory, no temporary left behind; then a clean directory.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(s.root, ec)) {
    FUZZ_CHECK(e.path() == s.dir,
               fmt::format("{} appeared beside the sink's directory", e.path().string()));
  }
  for (const auto& e : fs::directory_iterator(s.dir / ".riffle-tmp", ec)) {
    const std::string name = e.path().filename().string();
    FUZZ_CHECK(name.ends_with(".lock"), fmt::format("temporary {} left behind", name));
  }
  for (const auto& e : fs::directory_iterator(s.dir, ec)) {
    if (e.path().filename() != ".riffle-tmp") fs::remove_all(e.path(), ec);
  }
  return 0;
}
