#include <gtest/gtest.h>

#include "core/error.hpp"
#include "rewards/reward.hpp"

namespace troupe {
namespace {

TEST(reward_combiner, sums_weighted_components_and_ignores_unweighted_ones) {
  reward_section s;
  s.weights = {"correct:1.0", "format:0.25", "rail/max_length:-1"};
  reward_combiner c(s);
  EXPECT_DOUBLE_EQ(c.total({{"correct", 1}, {"format", 1}, {"rail/max_length", 0.5}, {"other", 9}}), 0.75);
  EXPECT_DOUBLE_EQ(c.total({}), 0.0);
}

TEST(reward_combiner, malformed_weights_name_the_entry) {
  for (std::vector<std::string> bad : {std::vector<std::string>{"correct"}, {"correct:x"}, {":1"}, {"a:1", "a:2"}}) {
    reward_section s;
    s.weights = bad;
    try {
      reward_combiner c(s);
      FAIL() << bad.back();
    } catch (const input_error& e) {
      EXPECT_NE(std::string(e.what()).find("reward.weights["), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace troupe
