#include "executor.hpp"

#include <algorithm>
#include <set>

#include "failure.hpp"
#include "sha256.hpp"

namespace mnm {
namespace {

std::string bytes_of(const Values &values)
{
    return std::string(reinterpret_cast<const char *>(values->data()), values->size() * sizeof(float));
}

Values row_values(const Tensor &tensor, size_t i)
{
    return std::make_shared<const std::vector<float>>(tensor.row(i), tensor.row(i) + tensor.row_size());
}

} // namespace

RefPtr make_ref(std::vector<float> array)
{
    std::string digest = sha256_hex(array.data(), array.size() * sizeof(float));
    return std::make_shared<const Ref>(Ref{std::make_shared<const std::vector<float>>(std::move(array)), digest});
}

std::pair<std::string, Tensor> stacked(const std::string &name, const std::vector<int64_t> &row_shape,
                                       const std::vector<const float *> &rows)
{
    Tensor t;
    t.shape.push_back(int64_t(rows.size()));
    t.shape.insert(t.shape.end(), row_shape.begin(), row_shape.end());
    size_t n = t.row_size();
    t.data.resize(n * rows.size());
    for (size_t i = 0; i < rows.size(); ++i)
        std::copy(rows[i], rows[i] + n, t.data.data() + i * n);
    return {name, std::move(t)};
}

Executor::Executor(const ModelConfig &config, const Backend &backend, int max_batch, size_t cache_size)
    : config_(config), backend_(backend), max_batch_(max_batch), codes_(cache_size * 4), backgrounds_(cache_size),
      features_(cache_size)
{
}

Outputs Executor::run(const std::string &graph, const Feeds &feeds, const std::vector<std::string> &outputs) const
{
    int64_t n = feeds.front().second.rows();
    if (n <= max_batch_)
        return backend_.run(graph, feeds, outputs);
    Outputs joined;
    for (int64_t start = 0; start < n; start += max_batch_) {
        int64_t count = std::min<int64_t>(max_batch_, n - start);
        Feeds chunk;
        for (const auto &feed : feeds) {
            Tensor part;
            part.shape = feed.second.shape;
            part.shape[0] = count;
            size_t row = feed.second.row_size();
            part.data.assign(feed.second.data.begin() + start * int64_t(row),
                             feed.second.data.begin() + (start + count) * int64_t(row));
            chunk.emplace_back(feed.first, std::move(part));
        }
        for (auto &item : backend_.run(graph, chunk, outputs)) {
            Tensor &into = joined[item.first];
            if (into.shape.empty()) {
                into.shape = item.second.shape;
                into.shape[0] = 0;
            }
            into.shape[0] += item.second.shape[0];
            into.data.insert(into.data.end(), item.second.data.begin(), item.second.data.end());
        }
    }
    return joined;
}

std::map<std::pair<std::string, std::string>, Values> Executor::encode(const EncodeJobs &jobs)
{
    std::map<std::pair<std::string, std::string>, Values> found;
    std::map<std::string, std::vector<std::pair<std::pair<std::string, std::string>, RefPtr>>> missing;
    for (const auto &job : jobs) {
        Values value = codes_.get(job.first.first + "/" + job.first.second);
        if (value)
            found[job.first] = value;
        else
            missing[job.first.first].push_back(job);
    }
    int s = config_.image_size;
    for (const auto &graph : missing) {
        std::vector<const float *> images;
        for (const auto &item : graph.second)
            images.push_back(item.second->array->data());
        Outputs out = run(graph.first, {stacked("image", {3, s, s}, images)});
        const Tensor &codes = out.at(graph.first.substr(4)); // enc_z -> z
        for (size_t i = 0; i < graph.second.size(); ++i) {
            const auto &key = graph.second[i].first;
            found[key] = codes_.put(key.first + "/" + key.second, row_values(codes, i));
        }
    }
    return found;
}

std::vector<Values> Executor::cached_stage(Lru &cache, const std::vector<std::string> &keys, const std::string &graph,
                                           const FeedsOf &feeds_of, const std::string &output)
{
    std::map<std::string, Values> values;
    std::vector<std::string> miss_keys;
    std::vector<size_t> firsts;
    std::set<std::string> missed;
    for (size_t i = 0; i < keys.size(); ++i) {
        if (values.count(keys[i]) || missed.count(keys[i]))
            continue;
        Values value = cache.get(keys[i]);
        if (value) {
            values[keys[i]] = value;
        } else {
            missed.insert(keys[i]);
            miss_keys.push_back(keys[i]);
            firsts.push_back(i);
        }
    }
    if (!firsts.empty()) {
        Outputs out = run(graph, feeds_of(firsts), {output});
        for (size_t j = 0; j < miss_keys.size(); ++j)
            values[miss_keys[j]] = cache.put(miss_keys[j], row_values(out.at(output), j));
    }
    std::vector<Values> result;
    for (const std::string &key : keys)
        result.push_back(values.at(key));
    return result;
}

std::vector<Values> Executor::backgrounds(const std::vector<Plan> &plans)
{
    std::vector<std::string> keys;
    for (const Plan &p : plans)
        keys.push_back(bytes_of(p.z_bg) + bytes_of(p.b));
    return cached_stage(
        backgrounds_, keys, "g_background",
        [&](const std::vector<size_t> &idx) {
            std::vector<const float *> z, b;
            for (size_t i : idx)
                z.push_back(plans[i].z_bg->data()), b.push_back(plans[i].b->data());
            return Feeds{stacked("z", {config_.z_dim}, z), stacked("b", {config_.b_dim()}, b)};
        },
        "background");
}

std::vector<Values> Executor::shape_features(const std::vector<Plan> &plans)
{
    std::vector<Values> result(plans.size());
    std::vector<size_t> extract, parent;
    for (size_t i = 0; i < plans.size(); ++i) {
        if (plans[i].shape_feature)
            result[i] = plans[i].shape_feature;
        else if (plans[i].feature_ref)
            extract.push_back(i);
        else
            parent.push_back(i);
    }
    int s = config_.image_size;
    if (!extract.empty()) {
        std::vector<std::string> keys;
        for (size_t i : extract)
            keys.push_back("S" + plans[i].feature_ref->digest);
        auto values = cached_stage(
            features_, keys, "extractor",
            [&](const std::vector<size_t> &idx) {
                std::vector<const float *> images;
                for (size_t j : idx)
                    images.push_back(plans[extract[j]].feature_ref->array->data());
                return Feeds{stacked("image", {3, s, s}, images)};
            },
            "shape_feature");
        for (size_t j = 0; j < extract.size(); ++j)
            result[extract[j]] = values[j];
    }
    if (!parent.empty()) {
        std::vector<std::string> keys;
        for (size_t i : parent)
            keys.push_back("P" + bytes_of(plans[i].z_pose) + bytes_of(plans[i].p));
        auto values = cached_stage(
            features_, keys, "g_parent",
            [&](const std::vector<size_t> &idx) {
                std::vector<const float *> z, p;
                for (size_t j : idx)
                    z.push_back(plans[parent[j]].z_pose->data()), p.push_back(plans[parent[j]].p->data());
                return Feeds{stacked("z", {config_.z_dim}, z), stacked("p", {config_.n_parent}, p)};
            },
            "shape_feature");
        for (size_t j = 0; j < parent.size(); ++j)
            result[parent[j]] = values[j];
    }
    return result;
}

std::vector<Composed> Executor::compose(const std::vector<Plan> &plans)
{
    std::vector<Values> backs = backgrounds(plans), features = shape_features(plans);
    int s = config_.image_size;
    std::vector<const float *> phi, c, bg;
    for (size_t i = 0; i < plans.size(); ++i)
        phi.push_back(features[i]->data()), c.push_back(plans[i].c->data()), bg.push_back(backs[i]->data());
    int64_t channels = int64_t(features[0]->size()) / (int64_t(s) * s);
    Outputs out = run("g_child",
                      {stacked("shape_feature", {channels, s, s}, phi), stacked("c", {config_.n_child}, c),
                       stacked("background", {3, s, s}, bg)},
                      {"image", "child_mask"});
    std::vector<Composed> result(plans.size());
    const Tensor &image = out.at("image"), &mask = out.at("child_mask");
    for (size_t i = 0; i < plans.size(); ++i) {
        result[i].image.assign(image.row(i), image.row(i) + image.row_size());
        result[i].child_mask.assign(mask.row(i), mask.row(i) + mask.row_size());
    }
    return result;
}

} // namespace mnm
