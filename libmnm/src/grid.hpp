// A labelled grid image, drawn exactly as runtime/grid.py does (same layout, OpenCV's Hershey
// font, nearest-neighbour enlargement of small cells, text tiles for code references).
#ifndef MNM_SRC_GRID_HPP
#define MNM_SRC_GRID_HPP

#include <optional>
#include <string>
#include <vector>

#include "imaging.hpp"

namespace mnm {

// One factor along an axis (a fixed factor: one position): its name and, per position, a thumbnail (or none: a text tile) and a label.
struct Axis {
    std::string name;
    std::vector<std::optional<Rgb>> thumbnails;
    std::vector<std::string> labels;
};

// Cells in row-major order (rows[0].labels.size() rows, cols->labels.size() columns) -> one image;
// `fixed` are the factors every cell shares, one position each, shown in a band of their own.
Rgb compose_grid(const std::vector<Rgb> &cells, const std::vector<Axis> &rows, const std::optional<Axis> &cols,
                 const std::string &caption, const std::vector<Axis> &fixed);

} // namespace mnm

#endif
