#include "machine.hpp"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <thread>

namespace mnm {
namespace {

int physical_cores()
{
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) != 0)
        return std::max(1u, std::thread::hardware_concurrency());
    std::set<std::string> cores;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(cpu, &mask))
            continue;
        std::ifstream siblings("/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/thread_siblings_list");
        std::string text;
        if (!std::getline(siblings, text))
            return std::max(1, CPU_COUNT(&mask));
        cores.insert(text);
    }
    return std::max<int>(1, int(cores.size()));
}

// CPUs per period allowed by the cgroup (v2 cpu.max, v1 cfs quota), 0 when unlimited or unknown.
double cpu_quota()
{
    std::string own;
    std::ifstream self("/proc/self/cgroup");
    for (std::string line; std::getline(self, line);)
        if (line.rfind("0::", 0) == 0)
            own = line.substr(3);
    const std::string root = "/sys/fs/cgroup";
    for (const std::string &path : {root + own + "/cpu.max", root + "/cpu.max"}) {
        std::ifstream in(path);
        std::string quota, period;
        if (in >> quota >> period) {
            if (quota == "max")
                return 0;
            double q = std::atof(quota.c_str()), p = std::atof(period.c_str());
            return q > 0 && p > 0 ? q / p : 0;
        }
    }
    std::ifstream quota_in(root + "/cpu/cpu.cfs_quota_us"), period_in(root + "/cpu/cpu.cfs_period_us");
    double q = 0, p = 0;
    if (quota_in >> q && period_in >> p && q > 0 && p > 0)
        return q / p;
    return 0;
}

} // namespace

int usable_cores()
{
    int cores = physical_cores();
    double quota = cpu_quota();
    return quota > 0 ? std::max(1, std::min(cores, int(std::ceil(quota)))) : cores;
}

} // namespace mnm
