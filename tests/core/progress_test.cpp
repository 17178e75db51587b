#include <gtest/gtest.h>

#include <sstream>

#include "core/error.hpp"
#include "core/progress.hpp"

namespace troupe {
namespace {

TEST(progress, log_style_prints_one_line_per_update_with_figures_rate_and_eta) {
  std::ostringstream out;
  progress p("grpo", 10, progress_style::log, out);
  EXPECT_EQ(p.render(5, {{"reward", 0.25}}, 10.0), "grpo 5/10 reward=0.25 0.5/s elapsed 00:10 eta 00:10");
  p.update(1, {});
  p.update(2, {});
  p.finish();
  std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3);
  EXPECT_NE(text.find("grpo done in"), std::string::npos);
}

TEST(progress, bar_style_redraws_in_place) {
  std::ostringstream out;
  progress p("sft", 4, progress_style::bar, out);
  EXPECT_EQ(p.render(2, {}, 2.0), "sft 2/4 [############............] 1/s elapsed 00:02 eta 00:02");
  p.update(1, {});
  EXPECT_EQ(out.str().rfind("\r\033[K", 0), 0u);
  EXPECT_EQ(out.str().find('\n'), std::string::npos);
}

TEST(progress, off_prints_nothing_and_unknown_style_is_an_input_error) {
  std::ostringstream out;
  progress p("x", 3, progress_style::off, out);
  p.update(1, {});
  p.finish();
  EXPECT_TRUE(out.str().empty());
  EXPECT_EQ(parse_progress_style("log"), progress_style::log);
  EXPECT_THROW(parse_progress_style("fancy"), input_error);
}

}  // namespace
}  // namespace troupe
