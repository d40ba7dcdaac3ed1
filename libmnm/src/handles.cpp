#include "handles.hpp"

#include <pthread.h>
#include <unistd.h>

#include <mutex>
#include <unordered_map>

#include "failure.hpp"

namespace mnm {
namespace {

struct Entry {
    HandleKind kind;
    std::shared_ptr<void> object;
    uint64_t owner;
    pid_t pid; // the process that opened it
};

struct Registry {
    std::mutex lock;
    std::unordered_map<uint64_t, Entry> entries;
    uint64_t next = 0x10001; // never reused; far from small integers and NULL
};

// Made once and never destroyed: no handle is torn down by exit() while another thread runs.
// fork() takes the lock first, so the child never inherits it held.
Registry &registry()
{
    static Registry *made = [] {
        auto *r = new Registry;
        pthread_atfork([] { registry().lock.lock(); }, [] { registry().lock.unlock(); },
                       [] { registry().lock.unlock(); });
        return r;
    }();
    return *made;
}

const char *name_of(HandleKind kind) { return kind == HandleKind::Pipeline ? "pipeline" : "animator"; }

const Entry &find(Registry &r, uint64_t handle, HandleKind kind)
{
    auto found = r.entries.find(handle);
    if (found == r.entries.end() || found->second.kind != kind)
        throw Failure(MNM_ERR_CLOSED, std::string("not an open ") + name_of(kind) +
                                          " (closed, or never returned by mnm_" + name_of(kind) + "_open)");
    if (found->second.pid != getpid())
        throw Failure(MNM_ERR_CLOSED, std::string("this ") + name_of(kind) +
                                          " was opened by the parent process before fork(); a forked child "
                                          "cannot use it (run models in the parent, or exec a new process)");
    return found->second;
}

} // namespace

uint64_t add_handle(HandleKind kind, std::shared_ptr<void> object, uint64_t owner)
{
    Registry &r = registry();
    std::lock_guard<std::mutex> hold(r.lock);
    uint64_t handle = r.next++;
    r.entries.emplace(handle, Entry{kind, std::move(object), owner, getpid()});
    return handle;
}

std::shared_ptr<void> use_handle(uint64_t handle, HandleKind kind, uint64_t *owner)
{
    Registry &r = registry();
    std::lock_guard<std::mutex> hold(r.lock);
    const Entry &entry = find(r, handle, kind);
    if (owner != nullptr)
        *owner = entry.owner;
    return entry.object;
}

void close_handle(uint64_t handle, HandleKind kind)
{
    Registry &r = registry();
    std::shared_ptr<void> last; // released after the lock: a pipeline's teardown takes time
    std::lock_guard<std::mutex> hold(r.lock);
    last = find(r, handle, kind).object;
    r.entries.erase(handle);
}

} // namespace mnm
