// The cores this process may use (as mnm.runtime.machine.usable_cores): ONNX Runtime's CPU threads.
#ifndef MNM_SRC_MACHINE_HPP
#define MNM_SRC_MACHINE_HPP

namespace mnm {

// Physical cores in the CPU affinity mask (hyper-thread siblings once), capped by the cgroup quota.
int usable_cores();

} // namespace mnm

#endif
