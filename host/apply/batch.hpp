#pragma once
// Batch apply over folders, list files and archives (tar, pax, GNU tar, compressed or not, and
// zip, read through libarchive): an output tree that mirrors the input, a JSONL manifest that
// makes re-runs resume, bad inputs recorded and skipped, and sharding across processes and
// machines (each file handled by exactly one shard).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "host/apply/stream.hpp"
#include "host/map/map_file.hpp"

namespace monge::host {

/// The largest archive member batch extracts (2 GiB): a larger one is a per-file error (extract
/// it yourself and give the file). Bounds the disk a hostile archive can fill.
inline constexpr int64_t kMaxMemberBytes = int64_t{1} << 31;
/// The longest archive member name batch takes (bytes); a longer one is a per-file error.
/// libarchive itself refuses pax and GNU long-name headers over 1 MiB before reading them.
inline constexpr size_t kMaxMemberNameBytes = 4096;

/// One input: a file, or a member of an archive. An input with an `error` is not restored but
/// recorded in the manifest with that error (a symbolic link, a duplicate, an over-size member,
/// an archive that cannot be read past some point).
struct BatchItem {
  std::string key;              ///< path relative to its input root: names the output, decides the shard
  std::filesystem::path file;   ///< the file on disk (empty for an archive member)
  std::filesystem::path archive;  ///< the archive holding it, if any
  int64_t member = -1;          ///< its position among the archive's entries (0-based), read in one pass
  int64_t size = -1;            ///< its declared size in bytes (-1: not declared, as in some zip files)
  std::string source;           ///< what the manifest records: the file, or "archive.tar:member"
  std::string error;            ///< why it is recorded as failed without being restored ("" to restore it)
};

/// How often this process has opened an archive and how many bytes it has read from archive
/// files (tests check that a batch reads each archive once to list it and once to restore it).
struct ArchiveReads {
  int64_t opens = 0, bytes = 0;
};
ArchiveReads archive_reads();

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
/// ending in .txt/.lst: one path per line, relative to the list, # comments) and archives (.tar,
/// .tar.gz, .tgz, .tar.xz, .txz, .tar.zst, .tzst, .tar.bz2, .tbz2, .tbz, .zip; read by libarchive,
/// headers only); single image files are taken as they are. `include` / `exclude` are shell
/// globs matched against the key and its file name; without `include`, files with the
/// extensions libvips commonly reads are taken. Items that cannot be restored come back with an
/// `error`, in order: symbolic links met in a folder or an archive (not followed), archive hard
/// links, members that are not regular files, over kMaxMemberBytes or named with more than
/// kMaxMemberNameBytes, members whose header libarchive warns about, an archive that cannot be
/// opened or read to its end (one item, keyed by the archive's name), and every later input with
/// the key of an earlier one (kept apart under "KEY (duplicate N)"). Throws monge::Error for a
/// missing input, an unreadable list, or when nothing is found.
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
  Precision precision = Precision::FP32;  ///< what the network ran in (resolved from apply.tiles.precision)
  std::filesystem::path manifest;
};

/// What a run needs from one line of an earlier run's manifest (docs/cli.md lists every field).
struct ManifestRecord {
  std::string key, status;
  std::string output;  ///< "" when the line has none (null)
};

/// One manifest line: nullopt, never an exception, for a line that is not a flat JSON object with
/// a string "key" and "status" (a line torn by a killed run, a damaged or hostile line: bad
/// escapes, invalid UTF-8, nesting, numbers out of range). Such a line is skipped on resume.
std::optional<ManifestRecord> parse_manifest_line(const std::string& line);

/// Runs the batch. Before any work, inputs that cannot be written safely get an error: a key that
/// would leave the output root, two inputs mapped to one output (after `format`; neither is
/// restored, each record names the other), an output that is an input file (the same path or,
/// through links, the same file). Per-file failures are recorded in the manifest and never stop
/// the run; a bad output root or map throws monge::Error before any work. Each archive is read
/// once, front to back, its wanted members extracted one at a time beside their outputs. The
/// precision is resolved once, before any work (bf16 on a CPU without it throws), and recorded in
/// every manifest record.
BatchReport run_batch(const LoadedMap& map, const std::vector<std::string>& inputs, const BatchOptions& options);

}  // namespace monge::host
