#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>

#include "cli/commands.hpp"
#include "core/config_binding.hpp"
#include "core/error.hpp"
#include "core/plot.hpp"
#include "core/run_dir.hpp"
#include "core/store.hpp"
#include "core/table.hpp"

namespace troupe::cli {

namespace {

constexpr const char* runs_usage = R"(usage: troupe runs list [--dir DIR]
       troupe runs show RUN [--dir DIR]
       troupe runs export RUN --csv FILE [--dir DIR]
       troupe runs plot RUN [METRIC[,METRIC...] ...] [--out FILE.svg] [--dir DIR]

  list     one line per run directory under DIR (default runs/)
  show     a run's status, metrics (last, min, max), checkpoints and events
  export   every metric row of a run as CSV: step,name,value,wall_time
  plot     curves of a run's metrics as an SVG chart (default RUN/plots.svg), one panel
           per argument; METRIC,METRIC shares a panel. Without METRICs: evaluation,
           reward, accuracy, loss, KL, entropy and the SFT loss, those the run has
RUN is a run directory's path, or its name under DIR.
)";

std::string format_time(double t) {
  if (t <= 0) return "-";
  std::time_t s = static_cast<std::time_t>(t);
  std::tm tm{};
  localtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string format_value(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

std::string duration_text(const run_info& info) {
  if (info.ended_at <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1fs", info.ended_at - info.started_at);
  return buf;
}

struct runs_args {
  std::string action;
  std::string run;
  std::string dir = "runs";
  std::string csv;
  std::string out;                  // plot --out
  std::vector<std::string> panels;  // plot: "name" or "name,name"
};

runs_args parse_args(const args& a) {
  runs_args r;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto& x = a[i];
    auto value = [&](const char* flag) {
      if (i + 1 >= a.size()) throw input_error(std::string("runs: ") + flag + " needs a value");
      return a[++i];
    };
    if (x == "--dir") r.dir = value("--dir");
    else if (x == "--csv") r.csv = value("--csv");
    else if (x == "--out") r.out = value("--out");
    else if (x.rfind("--", 0) == 0) throw input_error("runs: unknown option '" + x + "' (see troupe runs --help)");
    else if (r.action.empty()) r.action = x;
    else if (r.run.empty()) r.run = x;
    else if (r.action == "plot") r.panels.push_back(x);
    else throw input_error("runs: unexpected argument '" + x + "'");
  }
  return r;
}

int list_runs(const runs_args& r) {
  text_table t;
  t.header = {"run", "experiment", "status", "started", "duration", "last step", "metrics", "checkpoints"};
  for (const auto& dir : list_run_dirs(r.dir)) {
    try {
      auto s = run_store::open(dir + "/" + store_file_name, store_mode::read_only).summary();
      t.rows.push_back({std::filesystem::path(dir).filename().string(), s.info.experiment, s.info.status,
                        format_time(s.info.started_at), duration_text(s.info),
                        s.last_step < 0 ? "-" : std::to_string(s.last_step), std::to_string(s.metric_rows),
                        std::to_string(s.checkpoints)});
    } catch (const std::exception& e) {
      t.rows.push_back({std::filesystem::path(dir).filename().string(), "?", std::string("unreadable: ") + e.what()});
    }
  }
  if (t.rows.empty()) {
    std::cout << "no runs under " << r.dir << "/\n";
    return 0;
  }
  t.print(std::cout);
  return 0;
}

int show_run(const runs_args& r) {
  const auto dir = resolve_run_dir(r.run, r.dir);
  auto store = run_store::open(dir + "/" + store_file_name, store_mode::read_only);
  const auto s = store.summary();
  std::cout << "run         " << dir << '\n'
            << "experiment  " << s.info.experiment << '\n'
            << "status      " << s.info.status << '\n'
            << "started     " << format_time(s.info.started_at) << '\n'
            << "ended       " << format_time(s.info.ended_at) << '\n'
            << "duration    " << duration_text(s.info) << '\n'
            << "troupe      " << s.info.troupe_version << "\n\n";

  struct agg {
    std::int64_t count = 0, last_step = 0;
    double last = 0, min = std::numeric_limits<double>::infinity(), max = -std::numeric_limits<double>::infinity();
  };
  std::map<std::string, agg> by_name;
  for (const auto& m : store.metrics()) {
    auto& g = by_name[m.name];
    ++g.count;
    g.last = m.value, g.last_step = m.step;
    g.min = std::min(g.min, m.value), g.max = std::max(g.max, m.value);
  }
  text_table metrics;
  metrics.header = {"metric", "steps", "last step", "last", "min", "max"};
  for (const auto& [name, g] : by_name)
    metrics.rows.push_back({name, std::to_string(g.count), std::to_string(g.last_step), format_value(g.last),
                            format_value(g.min), format_value(g.max)});
  if (metrics.rows.empty()) std::cout << "no metrics\n";
  else metrics.print(std::cout);

  auto checkpoints = store.checkpoints();
  if (!checkpoints.empty()) {
    text_table t;
    t.header = {"checkpoint step", "path", "written"};
    for (const auto& c : checkpoints) t.rows.push_back({std::to_string(c.step), c.path, format_time(c.wall_time)});
    std::cout << '\n';
    t.print(std::cout);
  }
  auto events = store.events();
  if (!events.empty()) {
    text_table t;
    t.header = {"time", "event", "source", "message"};
    for (const auto& e : events) t.rows.push_back({format_time(e.wall_time), e.kind, e.source, e.message});
    std::cout << '\n';
    t.print(std::cout);
  }
  return 0;
}

int export_run(const runs_args& r) {
  if (r.csv.empty()) throw input_error("runs export: --csv FILE is required");
  const auto dir = resolve_run_dir(r.run, r.dir);
  auto store = run_store::open(dir + "/" + store_file_name, store_mode::read_only);
  text_table t;
  t.header = {"step", "name", "value", "wall_time"};
  auto rows = store.metrics();
  for (const auto& m : rows) {
    t.rows.push_back({std::to_string(m.step), m.name, format_double(m.value), format_double(m.wall_time)});
  }
  std::ostringstream csv;
  t.write_csv(csv);
  write_file_atomically(r.csv, csv.str());
  std::cout << "wrote " << rows.size() << " metric rows to " << r.csv << '\n';
  return 0;
}

}  // namespace

std::string plot_run_dir(const std::string& dir, const std::vector<std::string>& requested, const std::string& out_file) {
  auto store = run_store::open(dir + "/" + store_file_name, store_mode::read_only);
  const auto names = store.metric_names();
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  std::vector<std::string> panels = requested;
  if (panels.empty()) {
    for (const char* p : {"eval/pass@1,eval/pass@k", "train/reward_mean", "train/accuracy", "train/loss", "train/kl",
                          "train/entropy", "sft/loss"})
      panels.push_back(p);
  }
  std::vector<plot_panel> out;
  for (const auto& spec : panels) {
    plot_panel panel;
    std::stringstream parts(spec);
    for (std::string name; std::getline(parts, name, ',');) {
      if (!has(name)) {
        if (!requested.empty()) throw input_error("runs plot: the run has no metric '" + name + "'" + suggest(name, names));
        continue;  // a default panel the run lacks
      }
      plot_series series{name, {}};
      for (const auto& m : store.metrics(name)) series.points.push_back({static_cast<double>(m.step), m.value});
      panel.title += (panel.title.empty() ? "" : ", ") + name;
      panel.x_label = name.rfind("sft/", 0) == 0 ? "SFT step" : "step";
      panel.series.push_back(std::move(series));
    }
    if (!panel.series.empty()) out.push_back(std::move(panel));
  }
  if (out.empty()) throw input_error("runs plot: the run '" + dir + "' has none of the default metrics; name some");
  plot_layout layout;
  layout.title = store.info().name + " (" + store.info().experiment + ", " + store.info().status + ")";
  const auto file = out_file.empty() ? dir + "/plots.svg" : out_file;
  write_file_atomically(file, render_svg(out, layout));
  return "wrote " + std::to_string(out.size()) + " panel" + (out.size() == 1 ? "" : "s") + " to " + file;
}


namespace {

int plot_run(const runs_args& r) {
  std::cout << plot_run_dir(resolve_run_dir(r.run, r.dir), r.panels, r.out) << '\n';
  return 0;
}

}  // namespace

int cmd_runs(const args& a) {
  if (wants_help(a)) {
    std::cout << runs_usage;
    return 0;
  }
  const auto r = parse_args(a);
  if (r.action == "list") return list_runs(r);
  if ((r.action == "show" || r.action == "export" || r.action == "plot") && r.run.empty())
    throw input_error("runs " + r.action + ": missing RUN (a run directory or its name)");
  if (r.action == "show") return show_run(r);
  if (r.action == "export") return export_run(r);
  if (r.action == "plot") return plot_run(r);
  if (r.action.empty()) throw input_error(std::string("runs: missing action\n") + runs_usage);
  throw input_error("runs: unknown action '" + r.action + "'" + suggest(r.action, {"list", "show", "export", "plot"}));
}

}  // namespace troupe::cli
