// Handles: the opaque mnm_pipeline / mnm_animator pointers are numbers into one registry, never
// reused, so a closed or made-up handle is MNM_ERR_CLOSED and never a dangling pointer. A call holds
// a shared reference to its object: closing while other threads are inside calls is safe, the
// object goes when the last call returns. Handles remember the process that opened them: in a
// forked child they are refused (the parent's threads and locks did not come along).
#ifndef MNM_SRC_HANDLES_HPP
#define MNM_SRC_HANDLES_HPP

#include <cstdint>
#include <memory>
#include <string>

namespace mnm {

enum class HandleKind { Pipeline, Animator };

// Registers `object`; the returned number is the handle. `owner`: the pipeline an animator belongs to.
uint64_t add_handle(HandleKind kind, std::shared_ptr<void> object, uint64_t owner = 0);
// The object of an open handle of that kind (throws Failure(MNM_ERR_CLOSED) otherwise); `owner` set if not NULL.
std::shared_ptr<void> use_handle(uint64_t handle, HandleKind kind, uint64_t *owner = nullptr);
// Forgets the handle (throws Failure(MNM_ERR_CLOSED) when it is not open); the object goes with the
// last call that still uses it.
void close_handle(uint64_t handle, HandleKind kind);

} // namespace mnm

#endif
