// Failures inside the library: an exception that carries the mnm_status the C API returns.
#ifndef MNM_SRC_FAILURE_HPP
#define MNM_SRC_FAILURE_HPP

#include <stdexcept>
#include <string>

#include "mnm.h"

namespace mnm {

// A failed request: `status` is what the C call returns, what() the one-line message.
class Failure : public std::runtime_error {
public:
    Failure(mnm_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    mnm_status status() const noexcept { return status_; }

private:
    mnm_status status_;
};

// Shorthands for the statuses raised most.
[[noreturn]] inline void argument_error(const std::string &message) { throw Failure(MNM_ERR_ARGUMENT, message); }
[[noreturn]] inline void runtime_error(const std::string &message) { throw Failure(MNM_ERR_RUNTIME, message); }

// 100000000 -> "100,000,000", as the Python runtime writes numbers in its messages.
inline std::string with_commas(long long value)
{
    std::string digits = std::to_string(value), out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-')
            out += ',';
        out += digits[i];
    }
    return out;
}

} // namespace mnm

#endif
