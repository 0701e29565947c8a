#pragma once
// libvips helpers shared by the host's image code (builds with libvips only).

#ifdef MONGE_WITH_VIPS

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <vips/vips.h>

namespace monge::image {

/// Initialises libvips once per process, with its untrusted loaders blocked (inputs are untrusted).
void ensure_vips();

/// libvips' error buffer as one trimmed message; clears the buffer.
std::string take_vips_error();

/// Writes `im` to `file` (format from its extension, libvips save `options` such as
/// "[compression=deflate]") through a host::Temporary (.NAME.monge-RANDOM.EXT, the extension telling
/// libvips the format) and a rename, so `file` is never partial.
/// Returns false when libvips' write fails: the temporary file is gone and libvips' error buffer
/// says why, for the caller's message. A failed rename throws monge::Error.
/// With `before_commit`, the written temporary is renamed into place only if it returns true
/// (otherwise it is removed and false is returned, with libvips' error buffer untouched).
bool write_atomically(VipsImage* im, const std::filesystem::path& file, const std::string& options = "",
                      const std::function<bool()>& before_commit = {});

/// How many decoder warnings this process has seen that mean an image's data ended before the
/// image did (libjpeg's "premature end of data segment" and "Premature end of JPEG file": the
/// decoder completes such an image with grey). Compare before and after a decode; the last one's
/// text is truncation_warning(). A warning found is taken out of libvips' error buffer.
int64_t truncation_warnings();
std::string truncation_warning();
/// The error for `name` after such a warning.
std::string truncated_message(const std::string& name);

/// The NaN and infinite samples of a float file, counted in one streaming pass (libvips reads it
/// sequentially, in flat memory); 0 for integer files, which cannot hold any.
int64_t count_nonfinite(const std::filesystem::path& file);

/// The error for `bad` non-finite samples of `total` in `name`, suggesting `remedy` (an option).
std::string nonfinite_message(const std::string& name, int64_t bad, int64_t total, const std::string& remedy);

struct Unref {
  void operator()(VipsImage* im) const {
    if (im) g_object_unref(im);
  }
};
using ImagePtr = std::unique_ptr<VipsImage, Unref>;

}  // namespace monge::image

#endif
