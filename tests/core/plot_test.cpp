#include <gtest/gtest.h>

#include <cmath>

#include "core/plot.hpp"

namespace troupe {
namespace {

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(plot, ticks_are_round_and_cover_the_range) {
  const auto unit = nice_ticks(0, 1);
  ASSERT_EQ(unit.size(), 6u);
  for (std::size_t i = 0; i < unit.size(); ++i) EXPECT_NEAR(unit[i], 0.2 * static_cast<double>(i), 1e-12);
  auto t = nice_ticks(3, 598);  // 595 / 5 = 119 per tick: rounded up to 200
  EXPECT_EQ(t, (std::vector<double>{0, 200, 400, 600}));
  auto n = nice_ticks(-0.37, 0.12);
  EXPECT_LE(n.front(), -0.37);
  EXPECT_GE(n.back(), 0.12);
}

TEST(plot, one_polyline_per_series_with_its_finite_points_and_a_legend) {
  plot_panel p;
  p.title = "eval";
  p.series.push_back({"eval/pass@1", {{0, 0.15}, {100, 0.2}, {200, NAN}, {300, 0.36}}});
  p.series.push_back({"eval/pass@k", {{0, 0.4}, {300, 0.6}}});
  const auto svg = render_svg({p});
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(count(svg, "<polyline"), 2);
  // The NaN point is skipped: 3 points in the first line.
  const auto first = svg.find("points=\"");
  const auto pts = svg.substr(first + 8, svg.find('"', first + 8) - first - 8);
  EXPECT_EQ(count(pts, ","), 3) << pts;
  EXPECT_NE(svg.find(">eval/pass@k</text>"), std::string::npos) << "legend";
}

TEST(plot, degenerate_inputs_still_draw_something_sensible) {
  plot_panel single{"one point", "step", {{"x", {{5, 2.0}}}}};
  plot_panel flat{"flat", "step", {{"y", {{0, 1.0}, {10, 1.0}}}}};
  plot_panel empty{"empty <&>", "step", {{"z", {{0, NAN}}}}};
  const auto svg = render_svg({single, flat, empty});
  EXPECT_EQ(count(svg, "<circle"), 1);
  EXPECT_EQ(count(svg, "<polyline"), 1);
  EXPECT_NE(svg.find("no data"), std::string::npos);
  EXPECT_NE(svg.find("empty &lt;&amp;&gt;"), std::string::npos) << "titles are escaped";
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
}

}  // namespace
}  // namespace troupe
