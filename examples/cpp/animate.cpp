// mnm-animate: img2gif in C++, a static image animated by the pose of each frame of a video or webcam.
//
//   mnm-animate BUNDLE STATIC SOURCE OUT_DIR [--mode code|feature] [--fit crop|squash] [--max-frames N] [--show]
//
// The static image is decoded by the library (as the mnm CLI does), the video by OpenCV, whose
// frames go to the library as RGB pixels. SOURCE is a video file or a webcam index (0, 1, ...). A
// file gives every frame. A webcam runs in real time: a capture thread keeps only the newest frame,
// and the frames it replaces before they are animated are counted as dropped. Each animated frame
// goes to OUT_DIR/000000.png, 000001.png, ... (written atomically by the library) and, with --show,
// to a window (q or Esc stops; so does Ctrl-C). At the end: frames in and out, drops, latency
// p50/p95 (capture to written) and fps.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>

#include <filesystem>

#include <opencv2/core.hpp>
#include <opencv2/highgui.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "common.hpp"

using Clock = std::chrono::steady_clock;

static const char usage[] =
    "usage: mnm-animate BUNDLE STATIC SOURCE OUT_DIR [--mode code|feature] [--fit crop|squash] [--max-frames N]"
    " [--show]\n"
    "  SOURCE: a video file or a webcam index (0, 1, ...)\n";

static volatile std::sig_atomic_t interrupted = 0;
static void on_interrupt(int) { interrupted = 1; }

struct Frame {
    cv::Mat bgr;
    Clock::time_point captured;
};

// Frames from a video file or a webcam, counted.
class Source {
public:
    virtual ~Source() = default;
    virtual bool next(Frame &frame) = 0; // false: no more frames
    long frames_in = 0;
    long drops = 0;
};

// Every frame of a file, in order.
class FileSource : public Source {
public:
    explicit FileSource(const std::string &path) : capture_(path)
    {
        if (!capture_.isOpened())
            throw std::runtime_error(path + ": OpenCV cannot open this video");
    }
    bool next(Frame &frame) override
    {
        if (!capture_.read(frame.bgr))
            return false;
        frame.captured = Clock::now();
        ++frames_in;
        return true;
    }

private:
    cv::VideoCapture capture_;
};

// A webcam in real time: a thread captures continuously and keeps only the newest frame.
class LiveSource : public Source {
public:
    explicit LiveSource(int index) : capture_(index)
    {
        if (!capture_.isOpened())
            throw std::runtime_error("webcam " + std::to_string(index) + ": OpenCV cannot open it");
        thread_ = std::thread([this] { capture(); });
    }
    ~LiveSource() override
    {
        stopped_ = true;
        thread_.join();
    }
    bool next(Frame &frame) override
    {
        std::unique_lock<std::mutex> lock(mutex_);
        while (!fresh_ && !ended_ && !interrupted)
            ready_.wait_for(lock, std::chrono::milliseconds(100));
        if (!fresh_)
            return false;
        frame = std::move(newest_);
        fresh_ = false;
        return true;
    }

private:
    void capture()
    {
        Frame frame;
        while (!stopped_ && capture_.read(frame.bgr)) {
            frame.captured = Clock::now();
            std::lock_guard<std::mutex> lock(mutex_);
            ++frames_in;
            drops += fresh_ ? 1 : 0; // the newest frame was never animated
            newest_ = Frame{frame.bgr.clone(), frame.captured};
            fresh_ = true;
            ready_.notify_one();
        }
        std::lock_guard<std::mutex> lock(mutex_);
        ended_ = true;
        ready_.notify_one();
    }

    cv::VideoCapture capture_;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable ready_;
    Frame newest_;
    bool fresh_ = false, ended_ = false;
    std::atomic<bool> stopped_{false};
};

// The q-th quantile of `values` with linear interpolation between the nearest ranks (numpy's default).
static double quantile(std::vector<double> values, double q)
{
    if (values.empty())
        return 0.0;
    std::sort(values.begin(), values.end());
    double position = q * double(values.size() - 1);
    size_t below = size_t(position);
    size_t above = std::min(below + 1, values.size() - 1);
    return values[below] + (position - double(below)) * (values[above] - values[below]);
}

static std::unique_ptr<Source> open_source(const std::string &spec)
{
    bool index = !spec.empty() && std::all_of(spec.begin(), spec.end(), [](unsigned char c) { return c >= '0' && c <= '9'; });
    if (index)
        return std::make_unique<LiveSource>(std::stoi(spec));
    if (!std::filesystem::exists(spec))
        throw std::runtime_error(spec + ": video file not found");
    return std::make_unique<FileSource>(spec);
}

int main(int argc, char **argv)
{
    try {
        example::CommandLine cli(argc, argv, {"--mode", "--fit", "--max-frames"}, {"--show", "--help"});
        if (cli.has("--help") || cli.positional.size() != 4) {
            (cli.has("--help") ? std::cout : std::cerr) << usage;
            return cli.has("--help") ? 0 : 2;
        }
        const std::vector<std::string> &args = cli.positional;
        mnm::Mode mode = example::parse_mode(cli.option("--mode", "code"));
        mnm::Options options;
        options.fit = example::parse_fit(cli.option("--fit", "crop"));
        long max_frames = std::stol(cli.option("--max-frames", "0"));
        bool show = cli.has("--show");
        const std::filesystem::path out_dir = args[3];

        mnm::Pipeline pipeline(args[0], options);
        mnm::Animator animator = pipeline.animator(mnm::load_image(args[1]), mode);
        std::unique_ptr<Source> source = open_source(args[2]);
        bool live = dynamic_cast<LiveSource *>(source.get()) != nullptr;
        std::filesystem::create_directories(out_dir);
        std::signal(SIGINT, on_interrupt);

        std::vector<double> latency_ms;
        Clock::time_point start = Clock::now();
        Frame frame;
        cv::Mat rgb, shown;
        while (!interrupted && (max_frames <= 0 || long(latency_ms.size()) < max_frames) && source->next(frame)) {
            cv::cvtColor(frame.bgr, rgb, cv::COLOR_BGR2RGB);
            mnm::Image image = animator.frame(mnm::ImageView(rgb.data, rgb.cols, rgb.rows, int(rgb.step[0])));
            char name[32];
            std::snprintf(name, sizeof name, "%06zu.png", latency_ms.size());
            mnm::save_image((out_dir / name).string(), image);
            if (show) {
                cv::Mat out_rgb(image.height(), image.width(), CV_8UC3, image.data(), size_t(image.stride()));
                cv::cvtColor(out_rgb, shown, cv::COLOR_RGB2BGR);
                cv::resize(shown, shown, cv::Size(), 4.0, 4.0, cv::INTER_NEAREST);
                cv::imshow("mnm-animate", shown);
                int key = cv::waitKey(1);
                if (key == 'q' || key == 27)
                    break;
            }
            latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - frame.captured).count());
        }
        double seconds = std::chrono::duration<double>(Clock::now() - start).count();
        long frames_in = source->frames_in, drops = source->drops;
        source.reset();

        std::printf("frames in %ld, out %zu, dropped %ld (%s)\n", frames_in, latency_ms.size(), drops,
                    live ? "real time, newest frame only" : "every frame");
        if (!latency_ms.empty())
            std::printf("latency p50 %.1f ms, p95 %.1f ms (capture to written); %.1f fps\n",
                        quantile(latency_ms, 0.50), quantile(latency_ms, 0.95),
                        seconds > 0 ? double(latency_ms.size()) / seconds : 0.0);
        std::printf("wrote %zu frames to %s\n", latency_ms.size(), out_dir.string().c_str());
        if (latency_ms.empty())
            return example::fail(args[2] + ": no frames");
        return interrupted ? 130 : 0;
    } catch (const std::exception &error) { // mnm::Error, OpenCV and command-line errors
        return example::fail(error.what());
    }
}
