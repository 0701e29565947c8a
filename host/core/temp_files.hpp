#pragma once
// Temporary files that cannot be redirected and do not outlive an interrupted run.
//
// Every file monge writes for the user (images, map files, batch members extracted from archives)
// is written to a temporary beside its destination and renamed into place. Such a temporary is
// named .STEM.monge-RANDOM.EXT (16 hex digits from the system's random source, the destination's
// extension kept so that libvips picks the same saver), created with O_CREAT | O_EXCL | O_NOFOLLOW:
// nobody can predict the name, and a symlink planted under it makes the creation fail instead of
// redirecting the write. While it exists it is registered, and SIGINT, SIGTERM and SIGHUP remove
// every registered temporary before the signal takes its course.

#include <filesystem>
#include <functional>
#include <string>

namespace monge::host {

class Temporary {
 public:
  /// Creates the temporary for `target` (an empty file). Throws monge::Error when the folder does
  /// not exist or is not writable.
  explicit Temporary(const std::filesystem::path& target);
  /// Removes the file unless commit() moved it into place.
  ~Temporary();
  Temporary(const Temporary&) = delete;
  Temporary& operator=(const Temporary&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// Renames the temporary onto its target (atomic within a filesystem). Throws monge::Error.
  void commit();

 private:
  std::filesystem::path target_, path_;
  int slot_ = -1;
  bool done_ = false;
};

/// Whether `name` (a file name, no folder) is a temporary of `target`'s, as Temporary names them.
bool is_temporary_of(const std::string& name, const std::filesystem::path& target);

/// How long a temporary of someone else's must have been left untouched before monge removes it
/// as stale (batch removes its own shard's at once).
inline constexpr double kStaleSeconds = 3600;

/// Removes temporaries of `target` that an earlier, interrupted run left behind and that have not
/// been written to for `min_age_seconds` (a run still writing one keeps its modification time
/// fresh). Returns how many were removed.
int remove_stale_temporaries(const std::filesystem::path& target, double min_age_seconds);

/// Writes `write` to `file` through a temporary file in the same directory (a Temporary: an
/// unpredictable name, O_EXCL | O_NOFOLLOW, removed on SIGINT/SIGTERM) and a rename, so that
/// `file` is either the old or the complete new version, never partial. Stale temporaries of
/// `file` (kStaleSeconds) are removed first. Throws monge::Error naming `file`.
void write_atomically(const std::filesystem::path& file, const std::function<void(const std::string& tmp)>& write);

}  // namespace monge::host
