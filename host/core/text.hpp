#pragma once
// Small text helpers shared by the host.

#include <cctype>
#include <exception>
#include <string>

namespace monge::host {

/// `s` in ASCII lower case (file extensions, format names).
inline std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// The first line of an error's message: LibTorch's errors (c10::Error) carry a C++ backtrace
/// after it, starting "Exception raised from", which users do not need.
inline std::string without_trace(std::string msg) {
  if (auto cut = msg.find("\nException raised from"); cut != std::string::npos) msg.resize(cut);
  return msg;
}
inline std::string without_trace(const std::exception& e) { return without_trace(std::string(e.what())); }

}  // namespace monge::host
