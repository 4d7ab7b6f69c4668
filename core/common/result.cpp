// SPDX-License-Identifier: MIT OR Apache-2.0
// Error taxonomy helpers: names, errno mapping, and the abort path for misused Results.
#include "parallax/result.h"

#include <cstdio>
#include <cstring>

namespace parallax {

std::string_view to_string(Errc code) noexcept {
  switch (code) {
    case Errc::invalid_argument:
      return "invalid_argument";
    case Errc::out_of_range:
      return "out_of_range";
    case Errc::resource_exhausted:
      return "resource_exhausted";
    case Errc::unavailable:
      return "unavailable";
    case Errc::failed_precondition:
      return "failed_precondition";
    case Errc::permission_denied:
      return "permission_denied";
    case Errc::not_found:
      return "not_found";
    case Errc::already_exists:
      return "already_exists";
    case Errc::timeout:
      return "timeout";
    case Errc::data_loss:
      return "data_loss";
    case Errc::unsupported:
      return "unsupported";
    case Errc::io:
      return "io";
    case Errc::internal:
      return "internal";
    case Errc::cancelled:
      return "cancelled";
  }
  return "unknown";
}

Errc errc_from_errno(int e) noexcept {
  switch (e) {
    case EINVAL:
    case EBADF:
    case ENAMETOOLONG:
      return Errc::invalid_argument;
    case ERANGE:
    case EOVERFLOW:
    case EFBIG:
      return Errc::out_of_range;
    case ENOMEM:
    case ENOSPC:
    case EMFILE:
    case ENFILE:
    case EAGAIN:
      return Errc::resource_exhausted;
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
    case ESHUTDOWN:
      return Errc::unavailable;
    case EACCES:
    case EPERM:
    case EROFS:
      return Errc::permission_denied;
    case ENOENT:
    case ENODEV:
    case ENXIO:
      return Errc::not_found;
    case EEXIST:
    case EADDRINUSE:
      return Errc::already_exists;
    case ETIMEDOUT:
      return Errc::timeout;
    case ENOSYS:
    case EOPNOTSUPP:
      return Errc::unsupported;
    case EINTR:
    case ECANCELED:
      return Errc::cancelled;
    default:
      return Errc::io;
  }
}

Error Error::from_errno(std::string_view what, int e) {
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(e);
  return Error{errc_from_errno(e), std::move(msg)};
}

std::string Error::to_string() const {
  std::string s(parallax::to_string(code));
  s += ": ";
  s += message;
  return s;
}

namespace detail {
void result_panic(const Error& e) noexcept {
  std::fprintf(stderr, "parallax: Result accessed without a value: %s\n", e.to_string().c_str());
  std::abort();
}
}  // namespace detail

}  // namespace parallax
