#include "core/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.hpp"

namespace troupe {

progress_style parse_progress_style(const std::string& text) {
  if (text == "auto") return progress_style::automatic;
  if (text == "bar") return progress_style::bar;
  if (text == "periodic") return progress_style::periodic;
  if (text == "log") return progress_style::log;
  if (text == "off") return progress_style::off;
  throw input_error("progress style '" + text + "': expected auto, bar, periodic, log or off");
}

progress::progress(std::string stage, std::int64_t total, progress_style style, std::ostream& out,
                   std::int64_t first, now_fn now)
  : stage_(std::move(stage)),
    total_(total > 0 ? total : 1),
    first_(first),
    style_(style),
    out_(out),
    now_(std::move(now)),
    start_(now_()) {
  if (style_ == progress_style::automatic)
    style_ = ::isatty(STDOUT_FILENO) ? progress_style::bar : progress_style::periodic;
}

bool progress::periodic_line_due(std::int64_t done, clock::time_point now) const {
  if (printed_done_ < 0 || done >= total_) return true;
  const std::int64_t every = std::max<std::int64_t>(1, total_ / 20);  // 5%
  return done / every > printed_done_ / every || now - printed_at_ >= periodic_interval;
}

namespace {
std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  auto total = static_cast<long long>(s + 0.5);
  char buf[32];
  if (total >= 3600)
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", total / 3600, (total / 60) % 60, total % 60);
  else
    std::snprintf(buf, sizeof(buf), "%02lld:%02lld", total / 60, total % 60);
  return buf;
}
}  // namespace

std::string progress::render(std::int64_t done, const std::vector<std::pair<std::string, double>>& figures,
                             double elapsed_s) const {
  char buf[64];
  std::string line = stage_ + " " + std::to_string(done) + "/" + std::to_string(total_);
  if (style_ == progress_style::bar) {
    constexpr int width = 24;
    int filled = static_cast<int>(width * static_cast<double>(done) / static_cast<double>(total_));
    line += " [" + std::string(static_cast<std::size_t>(filled), '#') +
            std::string(static_cast<std::size_t>(width - filled), '.') + "]";
  }
  for (const auto& [name, value] : figures) {
    std::snprintf(buf, sizeof(buf), " %s=%.4g", name.c_str(), value);
    line += buf;
  }
  double rate = elapsed_s > 0 ? static_cast<double>(done - first_) / elapsed_s : 0.0;
  double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : NAN;
  std::snprintf(buf, sizeof(buf), " %.3g/s", rate);
  line += buf;
  line += " elapsed " + format_duration(elapsed_s) + " eta " + format_duration(eta);
  return line;
}

void progress::update(std::int64_t done, const std::vector<std::pair<std::string, double>>& figures) {
  if (style_ == progress_style::off) return;
  const auto now = now_();
  if (style_ == progress_style::periodic) {
    if (!periodic_line_due(done, now)) return;
    printed_done_ = done;
    printed_at_ = now;
  }
  double elapsed = std::chrono::duration<double>(now - start_).count();
  if (style_ == progress_style::bar) {
    out_ << "\r\033[K" << render(done, figures, elapsed) << std::flush;
  } else {
    out_ << render(done, figures, elapsed) << '\n' << std::flush;
  }
}

void progress::finish() {
  if (finished_ || style_ == progress_style::off) return;
  finished_ = true;
  double elapsed = std::chrono::duration<double>(now_() - start_).count();
  if (style_ == progress_style::bar) out_ << '\n';
  out_ << stage_ << " done in " << format_duration(elapsed) << '\n' << std::flush;
}

}  // namespace troupe
