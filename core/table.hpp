// Plain-text tables for the terminal (`troupe runs list`) and CSV for export.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace troupe {

struct text_table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;

  // Columns padded to their widest cell, a rule under the header.
  void print(std::ostream& out) const;
  // RFC 4180: fields with a comma, quote or newline are quoted, quotes doubled.
  void write_csv(std::ostream& out) const;
};

}  // namespace troupe
