#include "pipeline.hpp"

#include <map>

#include "failure.hpp"
#include "grid.hpp"

namespace mnm {
namespace {

const char *mode_name(Mode mode) { return mode == Mode::Code ? "code" : "feature"; }
const Kind KINDS[] = {Kind::Background, Kind::Pose, Kind::Shape, Kind::Texture};

// The encoder graphs a reference image given as factor `kind` runs through.
std::vector<std::string> encoders_for(Kind kind, Mode mode)
{
    switch (kind) {
    case Kind::Background:
        return {"enc_z", "enc_b"};
    case Kind::Pose:
        return mode == Mode::Code ? std::vector<std::string>{"enc_z"} : std::vector<std::string>{};
    case Kind::Shape:
        return {"enc_p"};
    default:
        return {"enc_c"};
    }
}

// Feature mode takes shape and pose from S(pose reference): the shape must be absent or that image.
void check_feature_mix(const MixFactors &mix)
{
    if (!mix.pose->is_image())
        runtime_error("feature mode: the pose must be a reference image (shape and pose both come from S(image))");
    if (!mix.shape || mix.shape == mix.pose)
        return;
    if (!mix.shape->is_image() || mix.shape->source != mix.pose->source)
        runtime_error("feature mode: shape and pose come from one image (the pose reference); "
                      "leave the shape out or give the same image");
}

Values values_of(const float *data, size_t n) { return std::make_shared<const std::vector<float>>(data, data + n); }

// The stitched image (paper section 4): a reference's real pixels through the soft child mask.
std::vector<float> stitched(Stitch stitch, const std::vector<float> &generated, const std::vector<float> &mask,
                            const std::vector<float> &reference)
{
    size_t plane = mask.size();
    std::vector<float> out(generated.size());
    for (size_t c = 0; c < 3; ++c)
        for (size_t i = 0; i < plane; ++i) {
            float m = std::min(1.0f, std::max(0.0f, mask[i]));
            float g = generated[c * plane + i], r = reference[c * plane + i];
            out[c * plane + i] = stitch == Stitch::Background ? g * m + r * (1.0f - m) : r * m + g * (1.0f - m);
        }
    return out;
}

} // namespace

Pipeline::Pipeline(Bundle bundle, const BackendOptions &options, Fit fit, const OrtLibrary &ort)
    : bundle_(std::move(bundle)), fit_(fit), backend_(create_backend(bundle_, ort, options)),
      executor_(bundle_.config(), *backend_, options.max_batch)
{
}

void Pipeline::require_mode(Mode mode) const
{
    if (bundle_.has_mode(mode_name(mode)))
        return;
    std::string modes;
    for (const std::string &m : bundle_.modes())
        modes += (modes.empty() ? "" : ", ") + m;
    throw Failure(MNM_ERR_UNSUPPORTED, bundle_.path() + ": the bundle has no " + mode_name(mode) + " mode (modes: " +
                                           modes + ")");
}

Rgb Pipeline::prepare(const Rgb &image, const std::optional<Box> &box, const std::string &source) const
{
    return prepare_pixels(image, config().image_size, box, fit_, source);
}

RefPtr Pipeline::reference(const Factor &factor)
{
    return make_ref(to_model_input(prepare(*factor.image, factor.box, factor.label)));
}

std::vector<Plan> Pipeline::plan_mixes(const std::vector<MixFactors> &mixes, Mode mode, Random &random, Stitch stitch)
{
    std::map<const Factor *, Codes> resolved; // one sample per factor object
    std::map<std::string, RefPtr> refs;       // source -> prepared reference: each prepared once
    EncodeJobs jobs;
    struct Entry {
        RefPtr ref;
        Codes codes;
    };
    std::vector<std::map<Kind, Entry>> wanted;
    std::vector<FactorPtr> keep_alive; // the shapes sampled per mix, while `resolved` points at them
    for (const MixFactors &mix : mixes) {
        FactorPtr shape;
        if (mode == Mode::Feature) {
            check_feature_mix(mix);
        } else {
            shape = mix.shape ? mix.shape : random_factor();
            keep_alive.push_back(shape);
        }
        std::map<Kind, Entry> entry;
        const FactorPtr factors[] = {mix.background, mix.pose, shape, mix.texture};
        for (size_t k = 0; k < 4; ++k) {
            const FactorPtr &factor = factors[k];
            if (!factor)
                continue;
            if (factor->is_image()) {
                RefPtr &ref = refs[factor->source];
                if (!ref)
                    ref = reference(*factor);
                for (const std::string &graph : encoders_for(KINDS[k], mode))
                    jobs[{graph, ref->digest}] = ref;
                entry[KINDS[k]].ref = ref;
            } else {
                auto found = resolved.find(factor.get());
                if (found == resolved.end())
                    found = resolved.emplace(factor.get(), resolve(*factor, KINDS[k], config(), random)).first;
                entry[KINDS[k]].codes = found->second;
            }
        }
        if (stitch != Stitch::None) {
            Kind source = stitch == Stitch::Background ? Kind::Background : Kind::Pose;
            if (!entry[source].ref)
                runtime_error(std::string("stitch ") + (stitch == Stitch::Background ? "background" : "foreground") +
                              ": the " + kind_name(source) + " must be a reference image");
        }
        wanted.push_back(entry);
    }
    auto codes = executor_.encode(jobs);
    auto code = [&](const Entry &e, const char *graph, bool z) {
        return e.ref ? codes.at({graph, e.ref->digest}) : z ? e.codes.z : e.codes.code;
    };
    std::vector<Plan> plans;
    for (auto &entry : wanted) {
        Plan plan;
        plan.z_bg = code(entry[Kind::Background], "enc_z", true);
        plan.b = code(entry[Kind::Background], "enc_b", false);
        plan.c = code(entry[Kind::Texture], "enc_c", false);
        for (Kind kind : KINDS)
            if (entry.count(kind) && entry[kind].ref)
                plan.refs[kind_name(kind)] = entry[kind].ref;
        if (mode == Mode::Feature) {
            plan.feature_ref = entry[Kind::Pose].ref;
        } else {
            plan.z_pose = code(entry[Kind::Pose], "enc_z", true);
            plan.p = code(entry[Kind::Shape], "enc_p", false);
        }
        plans.push_back(plan);
    }
    return plans;
}

std::vector<Rgb> Pipeline::render(const std::vector<MixFactors> &mixes, Mode mode, uint32_t seed, Stitch stitch)
{
    require_mode(mode);
    Random random{seed};
    std::vector<Plan> plans = plan_mixes(mixes, mode, random, stitch);
    std::vector<Composed> results = executor_.compose(plans);
    std::vector<Rgb> images;
    int s = config().image_size;
    for (size_t i = 0; i < plans.size(); ++i) {
        if (stitch == Stitch::None) {
            images.push_back(to_uint8(results[i].image.data(), s));
            continue;
        }
        const char *source = stitch == Stitch::Background ? "background" : "pose";
        std::vector<float> out = stitched(stitch, results[i].image, results[i].child_mask, *plans[i].refs.at(source)->array);
        images.push_back(to_uint8(out.data(), s));
    }
    return images;
}

GridResult Pipeline::grid(std::vector<FactorPtr> background, std::vector<FactorPtr> pose, std::vector<FactorPtr> shape,
                          std::vector<FactorPtr> texture, Mode mode, uint32_t seed, Stitch stitch)
{
    std::vector<FactorPtr> *axes[] = {&background, &pose, &shape, &texture};
    for (size_t k = 0; k < 4; ++k)
        if (axes[k]->empty())
            axes[k]->push_back(KINDS[k] == Kind::Shape ? nullptr : random_factor());
    if (mode == Mode::Code && shape.size() == 1 && !shape[0])
        shape[0] = random_factor(); // one sample for the whole grid
    std::vector<size_t> varying;
    for (size_t k = 0; k < 4; ++k)
        if (axes[k]->size() > 1)
            varying.push_back(k);
    // Cells: every combination, the texture fastest (the last varying factor runs along the columns).
    std::vector<MixFactors> mixes;
    for (const FactorPtr &b : background)
        for (const FactorPtr &p : pose)
            for (const FactorPtr &s : shape)
                for (const FactorPtr &t : texture)
                    mixes.push_back({b, p, s, t});
    GridResult result;
    result.cells = render(mixes, mode, seed, stitch);

    auto label = [](const FactorPtr &f) { return f ? f->label : std::string("from pose"); };
    auto thumbnail = [&](const FactorPtr &f) -> std::optional<Rgb> {
        if (!f || !f->is_image())
            return std::nullopt;
        return prepare(*f->image, f->box, f->label);
    };
    auto axis_of = [&](size_t k, const std::vector<size_t> &positions) {
        Axis axis{kind_name(KINDS[k]), {}, {}};
        for (size_t i : positions) {
            axis.thumbnails.push_back(thumbnail((*axes[k])[i]));
            axis.labels.push_back(label((*axes[k])[i]));
        }
        return axis;
    };
    std::optional<Axis> cols;
    std::vector<Axis> rows;
    if (!varying.empty()) {
        size_t col = varying.back();
        std::vector<size_t> all(axes[col]->size());
        for (size_t i = 0; i < all.size(); ++i)
            all[i] = i;
        cols = axis_of(col, all);
        // Row r of the grid: the product of the row factors' indices, the last row factor fastest.
        size_t n_rows = 1;
        for (size_t a = 0; a + 1 < varying.size(); ++a)
            n_rows *= axes[varying[a]]->size();
        for (size_t a = 0; a + 1 < varying.size(); ++a) {
            size_t inner = 1;
            for (size_t b = a + 1; b + 1 < varying.size(); ++b)
                inner *= axes[varying[b]]->size();
            std::vector<size_t> positions;
            for (size_t r = 0; r < n_rows; ++r)
                positions.push_back(r / inner % axes[varying[a]]->size());
            rows.push_back(axis_of(varying[a], positions));
        }
    }
    std::vector<Axis> fixed;
    for (size_t k = 0; k < 4; ++k)
        if (axes[k]->size() == 1 && (*axes[k])[0])
            fixed.push_back(axis_of(k, {0}));
    std::string caption =
        std::string(mode_name(mode)) + " mode" + (mode == Mode::Feature ? "; shape and pose from the pose reference" : "");
    result.image = compose_grid(result.cells, rows, cols, caption, fixed);
    return result;
}

EncodedCodes Pipeline::encode(const std::vector<std::shared_ptr<const Rgb>> &images, bool z, bool b, bool p, bool c)
{
    std::vector<RefPtr> refs;
    for (const auto &image : images)
        refs.push_back(make_ref(to_model_input(prepare(*image, std::nullopt, "image"))));
    const std::pair<bool, const char *> wanted[] = {{z, "enc_z"}, {b, "enc_b"}, {p, "enc_p"}, {c, "enc_c"}};
    EncodeJobs jobs;
    for (const auto &w : wanted)
        if (w.first)
            for (const RefPtr &ref : refs)
                jobs[{w.second, ref->digest}] = ref;
    auto codes = executor_.encode(jobs);
    EncodedCodes out;
    std::vector<float> *into[] = {&out.z, &out.b, &out.p, &out.c};
    for (size_t i = 0; i < 4; ++i)
        if (wanted[i].first)
            for (const RefPtr &ref : refs) {
                const auto &values = *codes.at({wanted[i].second, ref->digest});
                into[i]->insert(into[i]->end(), values.begin(), values.end());
            }
    return out;
}

std::vector<Rgb> Pipeline::generate(int count, const float *z_bg, const float *b, const float *z_pose, const float *p,
                                    const float *c)
{
    const ModelConfig &cfg = config();
    std::vector<Plan> plans;
    for (size_t i = 0; i < size_t(count); ++i) {
        Plan plan;
        plan.z_bg = values_of(z_bg + i * size_t(cfg.z_dim), size_t(cfg.z_dim));
        plan.b = values_of(b + i * size_t(cfg.b_dim()), size_t(cfg.b_dim()));
        plan.z_pose = values_of(z_pose + i * size_t(cfg.z_dim), size_t(cfg.z_dim));
        plan.p = values_of(p + i * size_t(cfg.n_parent), size_t(cfg.n_parent));
        plan.c = values_of(c + i * size_t(cfg.n_child), size_t(cfg.n_child));
        plans.push_back(plan);
    }
    std::vector<Rgb> images;
    for (const Composed &out : executor_.compose(plans))
        images.push_back(to_uint8(out.image.data(), cfg.image_size));
    return images;
}

Animator::Animator(Pipeline &pipeline, const Rgb &static_image, Mode mode, const std::optional<Box> &static_box,
                   const std::optional<Box> &frame_box)
    : pipeline_(pipeline), mode_(mode), frame_box_(frame_box)
{
    pipeline.require_mode(mode);
    RefPtr ref = make_ref(to_model_input(pipeline.prepare(static_image, static_box, "static image")));
    std::vector<std::string> graphs = {"enc_z", "enc_b", "enc_c"};
    if (mode == Mode::Code)
        graphs.push_back("enc_p");
    EncodeJobs jobs;
    for (const std::string &g : graphs)
        jobs[{g, ref->digest}] = ref;
    auto codes = pipeline.executor().encode(jobs);
    b_ = codes.at({"enc_b", ref->digest});
    c_ = codes.at({"enc_c", ref->digest});
    if (mode == Mode::Code)
        p_ = codes.at({"enc_p", ref->digest});
    Plan plan;
    plan.z_bg = codes.at({"enc_z", ref->digest});
    plan.b = b_;
    plan.c = c_;
    background_ = pipeline.executor().backgrounds({plan})[0];
}

Rgb Animator::frame(const Rgb &frame)
{
    const ModelConfig &cfg = pipeline_.config();
    int s = cfg.image_size;
    Executor &ex = pipeline_.executor();
    std::vector<float> x = to_model_input(pipeline_.prepare(frame, frame_box_, "frame"));
    Tensor phi;
    if (mode_ == Mode::Code) {
        Tensor z = ex.run("enc_z", {stacked("image", {3, s, s}, {x.data()})}).at("z");
        phi = ex.run("g_parent", {{"z", z}, stacked("p", {cfg.n_parent}, {p_->data()})}).at("shape_feature");
    } else {
        phi = ex.run("extractor", {stacked("image", {3, s, s}, {x.data()})}).at("shape_feature");
    }
    Outputs out = ex.run("g_child",
                         {{"shape_feature", phi}, stacked("c", {cfg.n_child}, {c_->data()}),
                          stacked("background", {3, s, s}, {background_->data()})},
                         {"image"});
    return to_uint8(out.at("image").data.data(), s);
}

} // namespace mnm
