#pragma once
// Batch apply over folders, list files and tar archives: an output tree that mirrors the input,
// a JSONL manifest that makes re-runs resume, corrupt inputs recorded and skipped, and sharding
// across processes and machines (each file handled by exactly one shard).

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "host/apply/stream.hpp"
#include "host/train/map_file.hpp"

namespace monge::host {

/// One input image: a file, or a member of a tar archive.
struct BatchItem {
  std::string key;              ///< path relative to its input root: names the output, decides the shard
  std::filesystem::path file;   ///< the file on disk (empty for an archive member)
  std::filesystem::path archive;  ///< the tar archive holding it, if any
  int64_t offset = 0, size = 0;   ///< the member's bytes in the (decompressed) archive
  std::string source;           ///< what the manifest records: the file, or "archive.tar:member"
};

/// Which part of the work this process does: files whose key hashes to `index` modulo `count`.
struct Shard {
  int64_t index = 0, count = 1;
  std::string from = "default";  ///< "--shard", or the environment variables it came from
};

/// The shard from `--shard i/n` (0-based i) when `flag` is not empty, otherwise from the launcher's
/// environment, first found of: SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT (minus
/// SLURM_ARRAY_TASK_MIN), SLURM_PROCID/SLURM_NTASKS, OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE,
/// RANK/WORLD_SIZE; otherwise 0/1. Throws monge::Error for malformed values.
Shard resolve_shard(const std::string& flag);

/// The shard (0 .. count-1) that handles `key`: a stable hash (FNV-1a), independent of the order
/// and number of other inputs.
int64_t shard_of(const std::string& key, int64_t count);

/// Expands inputs: folders (walked recursively, sorted), list files (`@list.txt`, or any file
/// ending in .txt/.lst: one path per line, relative to the list, # comments) and tar archives
/// (.tar, .tar.gz, .tgz); single image files are taken as they are. `include` / `exclude` are
/// shell globs matched against the key and its file name; without `include`, files with the
/// extensions libvips commonly reads are taken. Throws monge::Error for a missing input, an
/// unreadable list or archive, or when nothing is found.
std::vector<BatchItem> list_inputs(const std::vector<std::string>& inputs, const std::vector<std::string>& include,
                                   const std::vector<std::string>& exclude);

struct BatchOptions {
  StreamOptions apply;                 ///< per-image options (tiles, threads, device, depth, ...)
  std::filesystem::path out;           ///< output root; created when missing
  std::vector<std::string> include, exclude;
  std::string format;                  ///< output extension with optional libvips options, e.g. "tif[compression=deflate]"; "": keep each input's
  Shard shard;
  bool retry_failed = false;           ///< redo inputs an earlier run recorded as failed
  bool progress = true;
};

struct BatchReport {
  int64_t found = 0;         ///< inputs found
  int64_t mine = 0;          ///< inputs in this shard
  int64_t already = 0;       ///< finished by an earlier run (skipped)
  int64_t ok = 0, failed = 0;  ///< done now
  int64_t failed_before = 0;   ///< recorded as failed by an earlier run and not retried
  double seconds = 0, mpix = 0;
  std::filesystem::path manifest;
};

/// Runs the batch. Per-file failures are recorded in the manifest and never stop the run; a bad
/// output root or map throws monge::Error before any work.
BatchReport run_batch(const LoadedMap& map, const std::vector<std::string>& inputs, const BatchOptions& options);

}  // namespace monge::host
