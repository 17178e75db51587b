#include <gtest/gtest.h>

#include <chrono>
#include <sstream>
#include <string>
#include <vector>

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

// A clock the test moves by hand.
struct fake_clock {
  progress::clock::time_point t{};
  progress::now_fn fn() {
    return [this] { return t; };
  }
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(progress, periodic_style_logs_the_first_step_every_five_percent_and_the_last) {
  std::ostringstream out;
  fake_clock c;
  progress p("grpo", 600, progress_style::periodic, out, 0, c.fn());
  for (std::int64_t s = 1; s <= 600; ++s) {
    c.t += std::chrono::milliseconds(10);  // 6 s in all: no line is due by time
    p.update(s, {});
  }
  p.finish();
  const auto lines = lines_of(out.str());
  ASSERT_EQ(lines.size(), 22u) << out.str();  // step 1, steps 30, 60, ..., 600, and "done in"
  EXPECT_EQ(lines[0].rfind("grpo 1/600 ", 0), 0u) << lines[0];
  for (int k = 1; k <= 20; ++k) EXPECT_EQ(lines[k].rfind("grpo " + std::to_string(30 * k) + "/600 ", 0), 0u) << lines[k];
  EXPECT_EQ(lines[21].rfind("grpo done in", 0), 0u);
}

TEST(progress, periodic_style_logs_at_least_every_ten_seconds_and_a_resumed_stage_at_once) {
  std::ostringstream out;
  fake_clock c;
  progress p("sft", 100000, progress_style::periodic, out, 500, c.fn());
  p.update(501, {});  // the first update of a resumed stage
  c.t += std::chrono::seconds(9);
  p.update(502, {});  // neither 5% more nor 10 s since the last line
  c.t += std::chrono::seconds(1);
  p.update(503, {});  // 10 s since the last line
  c.t += std::chrono::seconds(30);
  p.update(504, {});
  const auto lines = lines_of(out.str());
  ASSERT_EQ(lines.size(), 3u) << out.str();
  EXPECT_EQ(lines[0].rfind("sft 501/100000 ", 0), 0u);
  EXPECT_EQ(lines[1].rfind("sft 503/100000 ", 0), 0u);
  EXPECT_EQ(lines[2].rfind("sft 504/100000 ", 0), 0u);
}

TEST(progress, a_stage_shorter_than_twenty_steps_logs_every_step_periodically) {
  std::ostringstream out;
  fake_clock c;
  progress p("dpo", 5, progress_style::periodic, out, 0, c.fn());
  for (std::int64_t s = 1; s <= 5; ++s) p.update(s, {});
  EXPECT_EQ(lines_of(out.str()).size(), 5u) << out.str();
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
  EXPECT_EQ(parse_progress_style("periodic"), progress_style::periodic);
  EXPECT_THROW(parse_progress_style("fancy"), input_error);
}

}  // namespace
}  // namespace troupe
