// What both examples share: the command line, the --mode and --fit values, the error line.
#ifndef MNM_EXAMPLES_COMMON_HPP
#define MNM_EXAMPLES_COMMON_HPP

#include <algorithm>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "mnm.hpp"

namespace example {

// Positional arguments and --name value options (--name=value works too).
struct CommandLine {
    std::vector<std::string> positional;
    std::map<std::string, std::string> options;
    std::vector<std::string> flags;

    // `valued`: options that take a value; `switches`: options that do not.
    CommandLine(int argc, char **argv, const std::vector<std::string> &valued,
                const std::vector<std::string> &switches)
    {
        for (int i = 1; i < argc; ++i) {
            std::string arg = argv[i];
            if (arg.rfind("--", 0) != 0 || arg == "--") {
                positional.push_back(arg);
                continue;
            }
            std::string name = arg.substr(0, arg.find('=')), value;
            if (std::find(switches.begin(), switches.end(), name) != switches.end() && name == arg) {
                flags.push_back(name);
                continue;
            }
            if (std::find(valued.begin(), valued.end(), name) == valued.end())
                throw std::invalid_argument("unknown option " + name);
            if (name != arg)
                value = arg.substr(arg.find('=') + 1);
            else if (i + 1 < argc)
                value = argv[++i];
            else
                throw std::invalid_argument(name + " needs a value");
            options[name] = value;
        }
    }
    bool has(const std::string &flag) const { return std::find(flags.begin(), flags.end(), flag) != flags.end(); }
    std::string option(const std::string &name, const std::string &fallback) const
    {
        auto found = options.find(name);
        return found == options.end() ? fallback : found->second;
    }
};

inline mnm::Mode parse_mode(const std::string &text)
{
    if (text == "code")
        return mnm::Mode::Code;
    if (text == "feature")
        return mnm::Mode::Feature;
    throw std::invalid_argument("--mode: expected code or feature, got '" + text + "'");
}

// --fit: how a reference without a box becomes a square (as the mnm CLI's --fit).
inline std::string parse_fit(const std::string &text)
{
    if (text != "crop" && text != "squash")
        throw std::invalid_argument("--fit: expected crop or squash, got '" + text + "'");
    return text;
}

inline int fail(const std::string &message)
{
    std::cerr << "error: " << message << "\n";
    return 2;
}

} // namespace example

#endif
