// Four C++ threads sharing one pipeline make the same images as one thread, through mnm.hpp.
//
//   threads_test BUNDLE
//
// One pipeline runs every job in turn; a second, fresh one (empty caches, so the threads also race
// on cache misses) runs them from four threads at once, three rounds each, with an animator per
// thread; first, all four threads fail calls at once, each checking it reads its own message.
// Last, a third pipeline is closed while four threads are inside calls on it (mixes and an
// animator's frames): every call before gives MNM_OK, every call after MNM_ERR_CLOSED, no crash.
// Prints the counts; exits 1 on any difference.
#include <atomic>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "mnm.hpp"

namespace {

constexpr int kThreads = 4, kJobs = 32, kRounds = 3, kFrames = 6, kErrors = 600;

mnm::Image picture(int width, int height, int seed)
{
    mnm::Image image(width, height);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            bool blob = (x - width / 2) * (x - width / 2) + (y - height / 3) * (y - height / 3) < width * height / 9;
            for (int k = 0; k < 3; ++k)
                image.data()[y * image.stride() + 3 * x + k] =
                    uint8_t(x * (2 + seed) + y * (3 + k) + 31 * seed + (blob ? 70 * (k + 1) : 0));
        }
    return image;
}

struct Job {
    mnm::Factor background, pose, shape, texture;
    mnm::Mode mode;
    uint32_t seed;
};

mnm::Image run(const mnm::Pipeline &pipeline, const Job &job)
{
    return pipeline.mix(job.background, job.pose, job.shape, job.texture, job.mode, job.seed);
}

// Threads call into one pipeline until it is closed under them; how many saw only MNM_OK, then only
// MNM_ERR_CLOSED (and did some calls before).
int close_while_in_calls(const char *bundle, const std::vector<mnm::Image> &pictures)
{
    mnm_pipeline *pipe = nullptr;
    if (mnm_pipeline_open(bundle, nullptr, &pipe) != MNM_OK)
        return -1;
    std::atomic<int> clean{0}, running{0}; // running: threads that have made two calls
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            mnm::ImageView view = pictures[t].view();
            const mnm_image *image = view.c();
            mnm_animator *animator = nullptr;
            bool ok = mnm_animator_open(pipe, image, nullptr, &animator) == MNM_OK;
            mnm_mix_request request = MNM_MIX_REQUEST_INIT;
            request.background.image = request.pose.image = request.shape.image = request.texture.image = image;
            int calls = 0;
            mnm_status status = MNM_OK;
            for (; status == MNM_OK && calls < 100000; ++calls) {
                mnm_image out{};
                status = t % 2 ? mnm_animator_frame(animator, image, &out) : mnm_mix(pipe, &request, &out);
                mnm_image_free(&out);
                running += calls == 1 && status == MNM_OK;
            }
            ok = ok && status == MNM_ERR_CLOSED && calls > 1;
            ok = ok && mnm_mix(pipe, &request, nullptr) == MNM_ERR_CLOSED; // and from then on
            ok = ok && mnm_animator_close(animator) == MNM_OK;
            clean += ok;
        });
    for (int waited = 0; running.load() < kThreads && waited < 60000; waited += 10) // then close under them
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    bool closed = mnm_pipeline_close(pipe) == MNM_OK;
    for (std::thread &thread : threads)
        thread.join();
    return closed ? clean.load() : -1;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::cerr << "usage: threads_test BUNDLE\n";
        return 2;
    }
    std::vector<mnm::Image> pictures;
    for (int i = 0; i < 6; ++i)
        pictures.push_back(picture(40 + 7 * i, 50 + 5 * i, i));
    std::vector<Job> jobs;
    for (int i = 0; i < kJobs; ++i) {
        bool feature = i % 2 == 1;
        const mnm::Image &pose = pictures[(i + 1) % 6];
        mnm::Factor shape = feature ? mnm::Factor() : i % 3 == 0 ? mnm::Factor("code:" + std::to_string(i % 4))
                                                                 : mnm::Factor(pictures[(i + 2) % 6]);
        mnm::Factor texture = i % 4 == 0 ? mnm::Factor("code:" + std::to_string(i % 16)) : mnm::Factor(pictures[(i + 3) % 6]);
        mnm::Factor background = i % 5 == 0 ? mnm::Factor("random") : mnm::Factor(pictures[i % 6]);
        jobs.push_back(Job{background, pose, shape, texture, feature ? mnm::Mode::Feature : mnm::Mode::Code,
                           uint32_t(i)});
    }

    try {
        mnm::Pipeline serial(argv[1]);
        std::vector<mnm::Image> expected;
        for (const Job &job : jobs)
            expected.push_back(run(serial, job));
        std::vector<std::vector<mnm::Image>> expected_frames(kThreads);
        for (int t = 0; t < kThreads; ++t) {
            mnm::Animator animator = serial.animator(pictures[t], t % 2 ? mnm::Mode::Feature : mnm::Mode::Code);
            for (int f = 0; f < kFrames; ++f)
                expected_frames[t].push_back(animator.frame(pictures[(t + f) % 6]));
        }

        mnm::Pipeline shared(argv[1]);
        std::vector<std::vector<mnm::Image>> got(kJobs), got_frames(kThreads);
        std::vector<int> errors_ok(kThreads, 0);
        std::atomic<int> ready{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t)
            threads.emplace_back([&, t] {
                ready.fetch_add(1);
                while (ready.load() < kThreads) // start together
                    std::this_thread::yield();
                // Failures of this thread's own, all threads at once: each message must name this thread's box.
                std::string want = "(" + std::to_string(1000 + t) + ", 0, 5, 5)";
                for (int i = 0; i < kErrors; ++i)
                    try {
                        shared.mix(mnm::Factor(pictures[0]).box(1000 + t, 0, 5, 5), "random", "random", "random");
                    } catch (const mnm::Error &error) {
                        errors_ok[t] += error.status() == MNM_ERR_ARGUMENT &&
                                        std::string(error.what()).find(want) != std::string::npos;
                    }
                mnm::Animator animator = shared.animator(pictures[t], t % 2 ? mnm::Mode::Feature : mnm::Mode::Code);
                for (int round = 0; round < kRounds; ++round)
                    for (int i = t; i < kJobs; i += kThreads) {
                        got[i].push_back(run(shared, jobs[i]));
                        got_frames[t].push_back(animator.frame(pictures[(t + got_frames[t].size()) % 6]));
                    }
            });
        for (std::thread &thread : threads)
            thread.join();

        int same = 0, same_frames = 0, frames = 0, errors = 0;
        for (int i = 0; i < kJobs; ++i) {
            bool all = got[i].size() == kRounds;
            for (const mnm::Image &image : got[i])
                all = all && image == expected[i];
            same += all;
        }
        for (int t = 0; t < kThreads; ++t) {
            for (size_t f = 0; f < got_frames[t].size(); ++f, ++frames)
                same_frames += got_frames[t][f] == expected_frames[t][f % kFrames];
            errors += errors_ok[t];
        }
        std::cout << "mixes identical " << same << "/" << kJobs << " (" << kRounds << " rounds, " << kThreads
                  << " threads)\n"
                  << "animated frames identical " << same_frames << "/" << frames << "\n"
                  << "own error messages " << errors << "/" << kThreads * kErrors << "\n";
        int stopped = close_while_in_calls(argv[1], pictures);
        std::cout << "closed while in calls: " << stopped << "/" << kThreads << " threads stopped cleanly\n";
        return same == kJobs && same_frames == frames && errors == kThreads * kErrors && stopped == kThreads ? 0 : 1;
    } catch (const mnm::Error &error) {
        std::cerr << "error: " << error.status_name() << ": " << error.what() << "\n";
        return 2;
    }
}
