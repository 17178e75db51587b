// The template half of task_source.hpp.
#pragma once

#include <optional>

#include "core/error.hpp"
#include "core/hash.hpp"

namespace troupe {

template <class Draw>
task draw_in_split(std::uint64_t seed, split s, std::int64_t index, double eval_fraction, Draw draw) {
  // These constants fix the task streams of existing seeds (arithmetic's first): changing
  // them changes every generated task.
  const std::uint64_t stream = splitmix64(seed ^ (s == split::train ? 0x7472ULL : 0x6576ULL));
  // A problem space too small for the fraction (three secrets, 10% held out) could hold
  // no problem of `s` at all; stop with an error instead of looping forever.
  constexpr std::uint64_t max_draws = 1u << 18;
  for (std::uint64_t k = 0; k < max_draws; ++k) {
    const std::uint64_t r = splitmix64(stream + splitmix64(static_cast<std::uint64_t>(index)) * 0x100000001b3ULL + k);
    std::optional<task_candidate> c = draw(r);
    if (!c) continue;
    if (in_eval_split(seed, c->key, eval_fraction) != (s == split::eval)) continue;
    return std::move(c->t);
  }
  throw input_error(std::string("env.options: no ") + split_name(s) + " task in " + std::to_string(max_draws) +
                    " draws; the problem space is too small for eval_fraction (make it larger, or the problems more varied)");
}

}  // namespace troupe
