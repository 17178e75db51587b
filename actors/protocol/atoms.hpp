// Every atom troupe's actors use, in one place (CAF 0.17 atoms: at most 10 characters).
#pragma once

#include <caf/atom.hpp>

namespace troupe {

using start_atom = caf::atom_constant<caf::atom("start")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using work_atom = caf::atom_constant<caf::atom("work")>;
using crash_atom = caf::atom_constant<caf::atom("crash")>;
using metrics_atom = caf::atom_constant<caf::atom("metrics")>;
using rollouts_atom = caf::atom_constant<caf::atom("rollouts")>;
using event_atom = caf::atom_constant<caf::atom("event")>;
using ckpt_atom = caf::atom_constant<caf::atom("ckpt")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using restarts_atom = caf::atom_constant<caf::atom("restarts")>;
using child_atom = caf::atom_constant<caf::atom("child")>;
using judge_atom = caf::atom_constant<caf::atom("judge")>;
using reset_atom = caf::atom_constant<caf::atom("reset")>;
using open_atom = caf::atom_constant<caf::atom("open")>;
using step_atom = caf::atom_constant<caf::atom("step")>;
using close_atom = caf::atom_constant<caf::atom("close")>;
using check_atom = caf::atom_constant<caf::atom("check")>;
using score_atom = caf::atom_constant<caf::atom("score")>;
using generate_atom = caf::atom_constant<caf::atom("generate")>;
using train_atom = caf::atom_constant<caf::atom("train")>;
using weights_atom = caf::atom_constant<caf::atom("weights")>;
using save_atom = caf::atom_constant<caf::atom("save")>;
using load_atom = caf::atom_constant<caf::atom("load")>;
using sft_atom = caf::atom_constant<caf::atom("sft")>;
using eval_atom = caf::atom_constant<caf::atom("eval")>;
using detail_atom = caf::atom_constant<caf::atom("detail")>;
using counters_atom = caf::atom_constant<caf::atom("counters")>;
using logprobs_atom = caf::atom_constant<caf::atom("logprobs")>;
using answer_atom = caf::atom_constant<caf::atom("answer")>;
// The cluster (distributed/cluster.hpp): a worker joins, the head spawns on it, the run ends.
using join_atom = caf::atom_constant<caf::atom("join")>;
using spawn_atom = caf::atom_constant<caf::atom("spawn")>;
using end_atom = caf::atom_constant<caf::atom("end")>;

}  // namespace troupe
