// The mix panel: a card per factor (an image, random, or a code), the mode and the seed. Every change
// schedules one POST /v1/mix after a short pause (debounce); a newer request aborts the one in flight,
// so only the answer to the latest inputs is ever shown.

import { explain, formatMs, postForm, retryDelayS } from "./api.js";
import { describeFile, imageInput, showBlob } from "./inputs.js";
import { $, setError, title } from "./ui.js";

export const FACTORS = ["background", "pose", "shape", "texture"];
const ABOUT = {
  background: "The scene behind the bird.",
  pose: "Where the bird is and how it stands.",
  shape: "The bird's outline.",
  texture: "The bird's colours and pattern.",
};
const DEBOUNCE_MS = 250;
const POSE_SEEDS = 1000; // the pose has no category: its slider picks z by seed

// The spec word of a factor's code: b, p and c are categories (code:K); the pose is z (seed:N).
export function codeWord(kind) {
  return kind === "pose" ? "seed" : "code";
}

// How many codes a factor has in this bundle (``info`` is GET /v1/info).
export function codeCount(kind, info) {
  if (kind === "pose") return POSE_SEEDS;
  return kind === "shape" ? info.config.n_parent : info.config.n_child;
}

export class MixPanel {
  constructor(info) {
    this.info = info;
    this.cards = {};
    this.timer = 0;
    this.controller = null;
    this.generation = 0;
    for (const kind of FACTORS) this.cards[kind] = this.card(kind);
    for (const radio of document.querySelectorAll("input[name=mode]")) {
      radio.disabled = !info.modes.includes(radio.value);
      radio.addEventListener("change", () => this.modeChanged());
    }
    $("seed").addEventListener("input", () => this.schedule());
    this.modeChanged();
  }

  mode() {
    return document.querySelector("input[name=mode]:checked").value;
  }

  seed() {
    const text = $("seed").value.trim();
    return /^\d+$/.test(text) ? Number(text) : null;
  }

  card(kind) {
    const state = { source: "random", file: null, code: 0 };
    const box = document.createElement("fieldset");
    box.className = "factor card";
    box.id = `factor-${kind}`;
    box.innerHTML = `<legend>${title(kind)}</legend><p class="factor-help">${ABOUT[kind]}</p>`;
    $("factors").append(box);

    const image = imageInput(box, {
      id: kind,
      what: `${title(kind)} image`,
      onFiles: ([file]) => {
        state.file = file;
        image.show(file);
        radios.image.disabled = false;
        choose("image");
      },
      onError: (error) => setError("mix-error", `${title(kind)} image: ${error.message}`),
    });

    const group = document.createElement("div");
    group.className = "source";
    group.setAttribute("role", "radiogroup");
    group.setAttribute("aria-label", `${title(kind)} from`);
    const radios = {};
    for (const value of ["image", "random", "code"]) {
      const label = document.createElement("label");
      const radio = document.createElement("input");
      Object.assign(radio, { type: "radio", name: `source-${kind}`, id: `source-${kind}-${value}`, value });
      radio.checked = value === state.source;
      radio.disabled = value === "image";
      radio.addEventListener("change", () => choose(value));
      label.append(radio, ` ${value === "code" ? codeWord(kind) : value}`);
      group.append(label);
      radios[value] = radio;
    }
    box.append(group);

    const row = document.createElement("label");
    row.className = "code-row";
    const slider = document.createElement("input");
    Object.assign(slider, { type: "range", id: `code-${kind}`, min: 0, max: codeCount(kind, this.info) - 1, value: 0 });
    const shown = document.createElement("output");
    shown.htmlFor = slider.id;
    shown.value = "0";
    const name = document.createElement("span");
    name.className = "visually-hidden";
    name.textContent = `${title(kind)} `;
    row.append(name, title(codeWord(kind)), slider, shown);
    slider.addEventListener("input", () => {
      state.code = Number(slider.value);
      shown.value = slider.value;
      choose("code");
    });
    box.append(row);

    const choose = (source) => {
      state.source = source;
      radios[source].checked = true;
      this.schedule();
    };
    return { box, state };
  }

  modeChanged() {
    const feature = this.mode() === "feature";
    const shape = this.cards.shape.box;
    shape.disabled = feature;
    shape.querySelector(".factor-help").textContent = feature
      ? "Feature mode: the shape comes from the pose image."
      : ABOUT.shape;
    $("mode-hint").textContent = feature
      ? "Feature mode: the shape and pose both come from the pose image (it must be an image), which keeps "
        + "its details."
      : "Code mode: every factor becomes a code, so any combination works.";
    this.schedule();
  }

  // A factor as the API takes it: a File, a spec (random, code:K, seed:N), or null (left out).
  value(kind) {
    const { source, file, code } = this.cards[kind].state;
    if (kind === "shape" && this.mode() === "feature") return null;
    if (source === "image" && file) return file;
    if (source === "code") return `${codeWord(kind)}:${code}`;
    return "random";
  }

  label(kind) {
    const value = this.value(kind);
    if (value === null) return "from the pose";
    return value instanceof File ? value.name : value;
  }

  // Append the factors (all, or those not in ``skip``), the mode and the seed to ``form``.
  fill(form, skip = []) {
    for (const kind of FACTORS) {
      if (skip.includes(kind)) continue;
      const value = this.value(kind);
      if (value instanceof File) form.append(kind, value, value.name);
      else if (value !== null) form.append(kind, value);
    }
    form.append("mode", this.mode());
    form.append("seed", String(this.seed()));
    form.append("format", "png");
    return form;
  }

  schedule(delay = DEBOUNCE_MS) {
    clearTimeout(this.timer);
    $("mix-result").setAttribute("aria-busy", "true");
    this.timer = setTimeout(() => this.run(), delay);
  }

  async run() {
    if (this.seed() === null) {
      setError("mix-error", "Seed: a whole number from 0.");
      $("mix-result").setAttribute("aria-busy", "false");
      return;
    }
    this.controller?.abort(); // superseded: its answer would be for inputs that are gone
    const controller = (this.controller = new AbortController());
    const generation = ++this.generation;
    const described = FACTORS.map((kind) => `${kind}: ${this.label(kind)}`).join(" · ");
    const words = FACTORS.map((kind) => {
      const value = this.value(kind);
      return `${kind} ${value instanceof File ? `from ${describeFile(value)}` : this.label(kind)}`;
    }).join("; ");
    $("mix-status").textContent = "Mixing…";
    try {
      const { blob, totalMs, serverMs } = await postForm("/v1/mix", this.fill(new FormData()), controller.signal);
      if (generation !== this.generation) return;
      const img = $("mix-image");
      const url = showBlob(img, blob);
      img.alt = `The mix: ${words}`;
      $("mix-caption").textContent = `${described} · ${this.mode()} mode, seed ${this.seed()}`;
      const download = $("mix-download");
      download.href = url;
      download.hidden = false;
      $("mix-status").textContent = `Mixed in ${formatMs(totalMs)} (server ${formatMs(serverMs)}).`;
      setError("mix-error");
    } catch (error) {
      if (error.name === "AbortError" || generation !== this.generation) return;
      const retrying = error.status === 503;
      setError("mix-error", explain("The server could not make this mix", error, retrying));
      $("mix-status").textContent = "";
      if (retrying) {
        this.schedule(retryDelayS(error) * 1000);
        return;
      }
    }
    if (generation === this.generation) $("mix-result").setAttribute("aria-busy", "false");
  }
}
