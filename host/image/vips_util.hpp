#pragma once
// libvips helpers shared by the host's image code (builds with libvips only).

#ifdef MONGE_WITH_VIPS

#include <memory>
#include <string>

#include <vips/vips.h>

namespace monge::image {

/// Initialises libvips once per process, with its untrusted loaders blocked (inputs are untrusted).
void ensure_vips();

/// libvips' error buffer as one trimmed message; clears the buffer.
std::string take_vips_error();

struct Unref {
  void operator()(VipsImage* im) const {
    if (im) g_object_unref(im);
  }
};
using ImagePtr = std::unique_ptr<VipsImage, Unref>;

}  // namespace monge::image

#endif
