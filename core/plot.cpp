#include "core/plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace troupe {

namespace {

// Colour-blind-safe palette (Okabe-Ito), one colour per series in order.
constexpr const char* palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

std::string tick_label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", std::abs(v) < 1e-12 ? 0.0 : v);
  return buf;
}

struct range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return !(lo <= hi); }
};

// Widens a degenerate range (one value) so that it has an extent to draw in.
range padded(range r) {
  if (r.hi - r.lo < 1e-12 * std::max(1.0, std::abs(r.hi))) {
    const double d = std::abs(r.lo) > 0 ? std::abs(r.lo) * 0.1 : 1.0;
    r.lo -= d;
    r.hi += d;
  }
  return r;
}

void render_panel(std::string& out, const plot_panel& p, double x0, double y0, double w, double h) {
  const double left = x0 + 56, right = x0 + w - 12, top = y0 + 28, bottom = y0 + h - 40;
  out += "<text x=\"" + num(x0 + w / 2) + "\" y=\"" + num(y0 + 18) +
         "\" text-anchor=\"middle\" font-weight=\"bold\">" + escape(p.title) + "</text>\n";
  range xr, yr;
  for (const auto& s : p.series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y)) xr.add(x), yr.add(y);
  out += "<rect x=\"" + num(left) + "\" y=\"" + num(top) + "\" width=\"" + num(right - left) + "\" height=\"" +
         num(bottom - top) + "\" fill=\"none\" stroke=\"#888\"/>\n";
  if (xr.empty()) {
    out += "<text x=\"" + num((left + right) / 2) + "\" y=\"" + num((top + bottom) / 2) +
           "\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n";
    return;
  }
  xr = padded(xr);
  yr = padded(yr);
  const auto xt = nice_ticks(xr.lo, xr.hi), yt = nice_ticks(yr.lo, yr.hi);
  // The axes span the ticks, so that the outermost ticks sit on the frame.
  xr.lo = std::min(xr.lo, xt.front()), xr.hi = std::max(xr.hi, xt.back());
  yr.lo = std::min(yr.lo, yt.front()), yr.hi = std::max(yr.hi, yt.back());
  auto px = [&](double x) { return left + (x - xr.lo) / (xr.hi - xr.lo) * (right - left); };
  auto py = [&](double y) { return bottom - (y - yr.lo) / (yr.hi - yr.lo) * (bottom - top); };
  for (double t : yt) {
    out += "<line x1=\"" + num(left) + "\" x2=\"" + num(right) + "\" y1=\"" + num(py(t)) + "\" y2=\"" + num(py(t)) +
           "\" stroke=\"#eee\"/>\n";
    out += "<text x=\"" + num(left - 4) + "\" y=\"" + num(py(t) + 4) + "\" text-anchor=\"end\">" + tick_label(t) +
           "</text>\n";
  }
  for (double t : xt)
    out += "<text x=\"" + num(px(t)) + "\" y=\"" + num(bottom + 14) + "\" text-anchor=\"middle\">" + tick_label(t) +
           "</text>\n";
  out += "<text x=\"" + num((left + right) / 2) + "\" y=\"" + num(bottom + 30) + "\" text-anchor=\"middle\">" +
         escape(p.x_label) + "</text>\n";
  for (std::size_t i = 0; i < p.series.size(); ++i) {
    const auto& s = p.series[i];
    const char* colour = palette[i % (sizeof(palette) / sizeof(palette[0]))];
    std::string pts;
    std::size_t n = 0;
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y)) pts += (n++ ? " " : "") + num(px(x)) + "," + num(py(y));
    if (n == 1)  // a single point has no line: draw a dot
      out += "<circle cx=\"" + pts.substr(0, pts.find(',')) + "\" cy=\"" + pts.substr(pts.find(',') + 1) +
             "\" r=\"3\" fill=\"" + colour + "\"/>\n";
    else if (n > 1)
      out += "<polyline fill=\"none\" stroke=\"" + std::string(colour) + "\" stroke-width=\"1.5\" points=\"" + pts +
             "\"><title>" + escape(s.name) + "</title></polyline>\n";
    if (p.series.size() > 1)  // legend, top left inside the frame
      out += "<text x=\"" + num(left + 8) + "\" y=\"" + num(top + 14 + 14 * static_cast<double>(i)) + "\" fill=\"" +
             colour + "\">" + escape(s.name) + "</text>\n";
  }
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> out;
  for (double t = std::floor(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push_back(t);
  if (out.back() < hi) out.push_back(out.back() + step);
  return out;
}

std::string render_svg(const std::vector<plot_panel>& panels, const plot_layout& layout) {
  const int cols = std::max(1, std::min<int>(layout.columns, static_cast<int>(std::max<std::size_t>(1, panels.size()))));
  const int rows = static_cast<int>((panels.size() + static_cast<std::size_t>(cols) - 1) / static_cast<std::size_t>(cols));
  const double head = layout.title.empty() ? 0 : 30;
  const double width = cols * layout.panel_width, height = head + std::max(1, rows) * layout.panel_height;
  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" + num(height) +
                    "\" viewBox=\"0 0 " + num(width) + " " + num(height) +
                    "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  if (!layout.title.empty())
    out += "<text x=\"" + num(width / 2) + "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">" +
           escape(layout.title) + "</text>\n";
  for (std::size_t i = 0; i < panels.size(); ++i) {
    const double x0 = static_cast<double>(static_cast<int>(i) % cols) * layout.panel_width;
    const double y0 = head + static_cast<double>(static_cast<int>(i) / cols) * layout.panel_height;
    render_panel(out, panels[i], x0, y0, layout.panel_width, layout.panel_height);
  }
  return out + "</svg>\n";
}

}  // namespace troupe
