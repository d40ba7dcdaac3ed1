// Bounded, thread-safe caches of computed values keyed by content (runtime/caches.py's Lru).
#ifndef MNM_SRC_CACHE_HPP
#define MNM_SRC_CACHE_HPP

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mnm {

using Values = std::shared_ptr<const std::vector<float>>; // shared, never changed once made

// Least-recently-used, at most `capacity` entries. A value handed out stays valid after eviction.
class Lru {
public:
    explicit Lru(size_t capacity) : capacity_(capacity) {}

    Values get(const std::string &key)
    {
        std::lock_guard<std::mutex> hold(lock_);
        auto found = index_.find(key);
        if (found == index_.end())
            return nullptr;
        order_.splice(order_.begin(), order_, found->second);
        return found->second->second;
    }

    Values put(const std::string &key, Values value)
    {
        std::lock_guard<std::mutex> hold(lock_);
        auto found = index_.find(key);
        if (found != index_.end()) {
            found->second->second = value;
            order_.splice(order_.begin(), order_, found->second);
            return value;
        }
        order_.emplace_front(key, value);
        index_[key] = order_.begin();
        while (order_.size() > capacity_) {
            index_.erase(order_.back().first);
            order_.pop_back();
        }
        return value;
    }

private:
    size_t capacity_;
    std::mutex lock_;
    std::list<std::pair<std::string, Values>> order_; // most recent first
    std::unordered_map<std::string, std::list<std::pair<std::string, Values>>::iterator> index_;
};

} // namespace mnm

#endif
