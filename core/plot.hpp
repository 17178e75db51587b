// Line charts as SVG, for curves people would rather see than read (`troupe runs plot`).
// Self-contained: no plotting library, the output opens in any browser.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace troupe {

// One curve: (x, y) points in x order. Non-finite y values are skipped (a gap-free line
// through the finite ones).
struct plot_series {
  std::string name;
  std::vector<std::pair<double, double>> points;
};

// One panel: a title, axis labels and its curves on shared axes.
struct plot_panel {
  std::string title;
  std::string x_label = "step";
  std::vector<plot_series> series;
};

struct plot_layout {
  int panel_width = 640;   // pixels
  int panel_height = 260;
  int columns = 2;         // panels side by side, then the next row
  std::string title;       // above all panels; may be empty
};

// The SVG document of `panels` laid out in a grid. Axis ranges come from the data
// (padded, with round tick values); a panel without finite points says "no data".
std::string render_svg(const std::vector<plot_panel>& panels, const plot_layout& layout = {});

// Round tick values covering [lo, hi], about `target` of them (1, 2 or 5 times a power
// of ten apart).
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

}  // namespace troupe
