#include "grid.hpp"

#include <algorithm>

#include <opencv2/imgproc.hpp>

#include "failure.hpp"

namespace mnm {
namespace {

constexpr int MIN_CELL = 96; // cells smaller than this are scaled up by an integer factor
constexpr int PAD = 4, LABEL_H = 14, TITLE_H = 16;
constexpr int FONT = cv::FONT_HERSHEY_SIMPLEX;
constexpr double FONT_SCALE = 0.38;
const cv::Scalar INK(30, 30, 30);
constexpr uint8_t WHITE = 255, TILE = 225;
const char *const FIXED_HEADING = "same in every cell:";

int text_width(const std::string &text)
{
    int baseline = 0;
    return text.empty() ? 0 : cv::getTextSize(text, FONT, FONT_SCALE, 1, &baseline).width;
}

// One line with its top at y, shortened with '..' to fit max_width pixels.
void put_text(cv::Mat &canvas, std::string text, int x, int y, int max_width, bool center = false)
{
    while (!text.empty() && text_width(text) > max_width)
        text = text.size() > 3 ? text.substr(0, text.size() - 3) + ".." : text.substr(0, text.size() - 1);
    if (text.empty())
        return;
    int baseline = 0;
    cv::Size size = cv::getTextSize(text, FONT, FONT_SCALE, 1, &baseline);
    if (center)
        x += std::max(0, (max_width - size.width) / 2);
    cv::putText(canvas, text, cv::Point(x, y + size.height + 2), FONT, FONT_SCALE, INK, 1, cv::LINE_AA);
}

cv::Mat text_tile(const std::string &text, int size)
{
    cv::Mat tile(size, size, CV_8UC3, cv::Scalar(TILE, TILE, TILE));
    put_text(tile, text, 0, size / 2 - 6, size, true);
    return tile;
}

cv::Mat view(const Rgb &image) { return cv::Mat(image.height, image.width, CV_8UC3, const_cast<uint8_t *>(image.pixels.data())); }

cv::Mat thumb(const Axis &axis, size_t index, int cell)
{
    if (!axis.thumbnails[index])
        return text_tile(axis.labels[index], cell);
    const Rgb &image = *axis.thumbnails[index];
    cv::Mat out;
    cv::resize(view(image), out, cv::Size(cell, cell), 0, 0, image.height > cell ? cv::INTER_AREA : cv::INTER_NEAREST);
    return out;
}

void place(cv::Mat &canvas, const cv::Mat &tile, const std::string &label, int x, int y)
{
    tile.copyTo(canvas(cv::Rect(x, y, tile.cols, tile.rows)));
    put_text(canvas, label, x, y + tile.rows + 1, tile.cols);
}

} // namespace

Rgb compose_grid(const std::vector<Rgb> &cells, const std::vector<Axis> &rows, const std::optional<Axis> &cols,
                 const std::string &caption, const std::vector<Axis> &fixed)
{
    int n_rows = rows.empty() ? 1 : int(rows[0].labels.size());
    int n_cols = cols ? int(cols->labels.size()) : 1;
    if (int(cells.size()) != n_rows * n_cols)
        throw Failure(MNM_ERR_INTERNAL, "grid: " + std::to_string(cells.size()) + " cells for a " +
                                            std::to_string(n_rows) + " x " + std::to_string(n_cols) + " grid");
    int side = cells[0].height;
    int scale = std::max(1, (MIN_CELL + side - 1) / side);
    int cell = side * scale;
    int step_x = cell + PAD, step_y = cell + LABEL_H + PAD;
    int left = int(rows.size()) * step_x;
    bool col_tiles = false;
    if (cols)
        for (const auto &t : cols->thumbnails)
            col_tiles = col_tiles || t.has_value();
    bool names_line = !rows.empty() || (cols && !col_tiles);
    int top = (caption.empty() ? 0 : TITLE_H) + (fixed.empty() ? 0 : TITLE_H + step_y + LABEL_H) +
              (col_tiles ? TITLE_H + step_y : 0) + (names_line ? TITLE_H : 0);
    int height = top + n_rows * step_y + PAD;
    int width = std::max({left + n_cols * step_x + PAD, text_width(caption) + 2 * PAD,
                          int(fixed.size()) * step_x + PAD, fixed.empty() ? 0 : text_width(FIXED_HEADING) + 2 * PAD});
    Rgb out(width, height);
    cv::Mat canvas = view(out);
    canvas.setTo(cv::Scalar(WHITE, WHITE, WHITE));
    int y = PAD;
    if (!caption.empty()) {
        put_text(canvas, caption, PAD, y, width - PAD);
        y += TITLE_H;
    }
    if (!fixed.empty()) {
        put_text(canvas, FIXED_HEADING, PAD, y, width - PAD);
        for (size_t k = 0; k < fixed.size(); ++k) {
            int x = PAD + int(k) * step_x;
            place(canvas, thumb(fixed[k], 0, cell), fixed[k].name, x, y + TITLE_H);
            put_text(canvas, fixed[k].labels[0], x, y + TITLE_H + cell + 1 + LABEL_H, cell);
        }
        y += TITLE_H + step_y + LABEL_H;
    }
    if (col_tiles) {
        put_text(canvas, cols->name, left + PAD, y, n_cols * step_x);
        for (int j = 0; j < n_cols; ++j)
            place(canvas, thumb(*cols, size_t(j), cell), cols->labels[size_t(j)], left + PAD + j * step_x, y + TITLE_H);
        y += TITLE_H + step_y;
    }
    if (names_line) {
        for (size_t a = 0; a < rows.size(); ++a)
            put_text(canvas, rows[a].name, PAD + int(a) * step_x, y, step_x - PAD);
        if (cols && !col_tiles)
            for (int j = 0; j < n_cols; ++j)
                put_text(canvas, cols->labels[size_t(j)], left + PAD + j * step_x, y, cell, true);
        y += TITLE_H;
    }
    for (size_t a = 0; a < rows.size(); ++a)
        for (int i = 0; i < n_rows; ++i)
            place(canvas, thumb(rows[a], size_t(i), cell), rows[a].labels[size_t(i)], PAD + int(a) * step_x,
                  y + i * step_y);
    for (size_t index = 0; index < cells.size(); ++index) {
        int i = int(index) / n_cols, j = int(index) % n_cols;
        cv::Mat big = view(cells[index]);
        if (scale > 1)
            cv::resize(view(cells[index]), big, cv::Size(cell, cell), 0, 0, cv::INTER_NEAREST);
        big.copyTo(canvas(cv::Rect(left + PAD + j * step_x, y + i * step_y, cell, cell)));
    }
    return out;
}

} // namespace mnm
