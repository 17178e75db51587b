#include "core/error.hpp"

#include <cstring>

namespace troupe {

std::string errno_text(int errnum) {
  char buf[256];
  // GNU strerror_r may return a static string instead of filling buf.
  const char* text = strerror_r(errnum, buf, sizeof(buf));
  return text;
}

}  // namespace troupe
